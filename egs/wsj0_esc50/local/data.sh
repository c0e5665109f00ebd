#!/usr/bin/env bash
# Stage 0 of egs/wsj0_esc50: WSJ0 and/or ESC-50 -> the data folder, through the
# corpus indexers wsj0 (or wsj0_2mix for a wsj0-2mix tree, whose s1/s2 utterances
# the authors mixed) and esc50 of python -m ugr.data.prepare. Without either, the
# mini corpus of real recordings (tools/minicorpus) stands in for both.
set -euo pipefail
wsj0=""
esc50=""
download=false
. scripts/setup.sh
if [ -z "$wsj0" ] && [ -z "$esc50" ]; then
  python tools/minicorpus/build.py --out "$downloads/minicorpus"
  wsj0=$downloads/minicorpus/wsj0
  esc50=$downloads/minicorpus/esc50
fi
corpora=()
if [ -n "$wsj0" ]; then
  indexer=wsj0
  for level in wav8k wav16k min max tr; do [ ! -d "$wsj0/$level" ] || indexer=wsj0_2mix; done
  corpora+=(--corpus "$indexer" "$wsj0")
fi
[ -z "$esc50" ] || corpora+=(--corpus esc50 "$esc50" "download=$download")
python -m ugr.data.prepare --out "$data" --fs "$fs" "${force_flag[@]}" "${corpora[@]}"
