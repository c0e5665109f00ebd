#!/usr/bin/env bash
# Stage 0 of egs/class_folders: folders of sounds, one per class -> the data folder, through
# the corpus indexer class_folders of python -m ugr.data.prepare (labels: fine class = the
# folder, group = the class, coarse class from --coarse; the split rule is in
# ugr/data/corpora/class_folders.py). Without --corpus, the mini corpus's class folders.
set -euo pipefail
corpus=""
layout=""
coarse=""
split_seed=""
valid_fraction=""
test_fraction=""
. scripts/setup.sh
if [ -z "$corpus" ]; then
  python tools/minicorpus/build.py --out "$downloads/minicorpus"
  corpus=$downloads/minicorpus/class_folders
fi
options=()
[ -z "$layout" ] || options+=("layout=$layout")
[ -z "$coarse" ] || options+=("coarse=$coarse")
[ -z "$split_seed" ] || options+=("seed=$split_seed")
[ -z "$valid_fraction" ] || options+=("valid=$valid_fraction")
[ -z "$test_fraction" ] || options+=("test=$test_fraction")
python -m ugr.data.prepare --out "$data" --fs "$fs" "${force_flag[@]}" --corpus class_folders "$corpus" "${options[@]}"
