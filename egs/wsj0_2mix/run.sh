#!/usr/bin/env bash
# egs/wsj0_2mix: two-speaker separation on the published wsj0-2mix mixtures. This file
# names the corpus options and the default experiments; the stages are the shared ones of
# egs/TEMPLATE/ugr.sh (./run.sh --help lists every option). With no corpus given, a
# wsj0-2mix tree made the published way from the mini corpus's real voices stands in.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
exec ./ugr.sh --corpus_options "wsj0_2mix mode" --corpus_help "\
  --wsj0_2mix DIR        the published tree: DIR/wav8k|wav16k/min|max/tr|cv|tt/{s1,s2,mix_clean} [the mini corpus]
  --mode min|max         which published mixtures [min]
Validation and test use the published cv/tt mixtures as they are; training uses the published
tr mixtures (random segments), or remixes the tr utterances: --override data.train_from=sources.
Experiments: NAME is conf/**/NAME.yaml (conf/cpu/, conf/gpu/; README.md). On one GPU:
  ./run.sh --wsj0_2mix /corpora/wsj0-2mix --ngpu 1 --experiments 'baseline robust_a5'" \
  --mode min --experiments "baseline_cpu robust_a5_cpu" "$@"
