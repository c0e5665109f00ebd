#!/usr/bin/env bash
# Stage 0 of egs/librimix: a LibriMix tree -> the data folder, through the corpus indexer librimix of
# python -m ugr.data.prepare (the metadata CSVs' mixtures of the task's type for train/dev/test, and the
# utterances of their s1/s2 files for remixing; labels in ugr/data/corpora/librimix.py). It takes wav8k or
# wav16k, whichever is --fs (else the other, resampled). Without a tree, the mini corpus builds one.
set -euo pipefail
librimix=""
task=sep_clean
mode=min
train_set=train-360
speakers=""
. scripts/setup.sh
case $task in
  sep_clean|sep_noisy) ;;  # checked again, with the tree, by the indexer; here before any build
  *) die "--task '$task': use sep_clean (mix_clean) or sep_noisy (mix_both); the enh_* tasks are not two-speaker separation" ;;
esac
if [ -z "$librimix" ]; then
  python tools/minicorpus/build.py --out "$downloads/minicorpus"
  librimix=$downloads/minicorpus/librimix
fi
options=("task=$task" "mode=$mode" "train=$train_set")
[ -z "$speakers" ] || options+=("speakers=$speakers")
python -m ugr.data.prepare --out "$data" --fs "$fs" "${force_flag[@]}" --corpus librimix "$librimix" "${options[@]}"
