#!/usr/bin/env bash
# Stage 0 of egs/wsj0_2mix: a wsj0-2mix tree -> the data folder, through the corpus indexer
# wsj0_2mix of python -m ugr.data.prepare (the published mixtures of tr/cv/tt, and the
# utterances of their s1/s2 files for remixing). It takes wav8k or wav16k, whichever is
# --fs (else the other, resampled). Without a tree, the mini corpus builds one.
set -euo pipefail
wsj0_2mix=""
mode=min
. scripts/setup.sh
if [ -z "$wsj0_2mix" ]; then
  python tools/minicorpus/build.py --out "$downloads/minicorpus"
  wsj0_2mix=$downloads/minicorpus/wsj0-2mix
fi
python -m ugr.data.prepare --out "$data" --fs "$fs" "${force_flag[@]}" --corpus wsj0_2mix "$wsj0_2mix" "mode=$mode"
