#!/usr/bin/env bash
# egs/librimix: two-speaker separation on LibriMix (Libri2Mix) in the layout its generation scripts write.
# This file names the corpus options and the default experiments; the stages are the shared ones of
# egs/TEMPLATE/ugr.sh (./run.sh --help lists every option). With no corpus given, a Libri2Mix tree made
# the LibriMix way from the mini corpus's real voices and environmental sounds stands in.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
exec ./ugr.sh --corpus_options "librimix task mode train_set speakers" --corpus_help "\
  --librimix DIR         LibriMix's storage folder (holding Libri2Mix, LibriSpeech) or any level below:
                         Libri2Mix/wav8k|wav16k/min|max/{train-100,train-360,dev,test}, metadata/ [the mini corpus]
  --task T               sep_clean (mix_clean) or sep_noisy (mix_both; the two speakers are the
                         references, the noise is none) [sep_clean]
  --mode min|max         which mixtures [min]
  --train_set S          training subset(s): train-360, train-100 or train-100,train-360 [train-360]
  --speakers FILE        LibriSpeech's SPEAKERS.TXT for the female/male labels [DIR/LibriSpeech/SPEAKERS.TXT]
Validation and test are the dev/test mixtures of the metadata CSVs as they are; training takes random
segments of the training subset's mixtures, or remixes its utterances: --override data.train_from=sources.
Experiments: NAME is conf/**/NAME.yaml (conf/cpu/, conf/gpu/; README.md). On one GPU:
  ./run.sh --librimix /corpora/LibriMix --task sep_noisy --fs 8000 --ngpu 1 --experiments 'baseline robust_a5'" \
  --task sep_clean --mode min --train_set train-360 --experiments "baseline_cpu robust_a5_cpu" "$@"
