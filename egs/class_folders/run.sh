#!/usr/bin/env bash
# egs/class_folders: separation of your own sounds, one folder per class. This file names
# the corpus options and the default experiments; the stages are the shared ones of
# egs/TEMPLATE/ugr.sh (./run.sh --help lists every option). With no corpus given, class
# folders of the mini corpus's real recordings stand in. Copy this folder to start a recipe
# of your own: cp -r egs/class_folders egs/mine && egs/mine/run.sh --corpus /my/sounds
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
exec ./ugr.sh --corpus_options "corpus layout coarse split_seed valid_fraction test_fraction" --corpus_help "\
  --corpus DIR           DIR/<class>/*.{wav,flac,ogg,mp3}, or DIR/{train,valid,test}/<class>/...;
                         any sample rate and channel count [the mini corpus]
  --layout classes|splits
                         settles a corpus that reads both ways (a class folder named train, valid or
                         test holding only subfolders); else decided by what the folders hold [auto]
  --coarse MAP           coarse class of each class, e.g. 'speech:speech,*:env' (then set data.priors
                         to match, e.g. --override 'data.priors={speech+env: 1}') [*:sound]
  --split_seed N --valid_fraction F --test_fraction F
                         without split folders: a seeded split by file, per class [0, 0.1, 0.1]
Experiments: NAME is conf/**/NAME.yaml (conf/cpu/, conf/gpu/; README.md). Class bias towards
the class you name (the experiment class_bias_cpu, gamma 3 for it):
  ./run.sh --corpus DIR --experiments 'baseline_cpu class_bias_cpu' \\
           --override 'class_bias_cpu:weighting.gamma={dog: 3}'" \
  --experiments "baseline_cpu robust_a5_cpu" "$@"
