#!/usr/bin/env bash
# egs/wsj0_esc50: speech (WSJ0) + environmental sounds (ESC-50), the paper's corpora.
# This file names the corpus options and the default experiments; the stages are the
# shared ones of egs/TEMPLATE/ugr.sh (./run.sh --help lists every option). With no corpus
# given, the mini corpus of real recordings stands in for both (built in downloads/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
exec ./ugr.sh --corpus_options "wsj0 esc50 download" --corpus_help "\
  --wsj0 DIR             WSJ0 (si_tr_s, si_dt_05, si_et_05), or a wsj0-2mix tree [the mini corpus]
  --esc50 DIR            ESC-50 release folder (audio/, meta/esc50.csv) [the mini corpus]
  --download true|false  download ESC-50 (about 600 MB) into a missing --esc50 folder [false]
Experiments: NAME is conf/**/NAME.yaml (conf/cpu/, conf/gpu/, conf/paper/, conf/study/; README.md);
the paper's Table 1 on one GPU:
  ./run.sh --wsj0 /corpora/wsj0 --esc50 /corpora/ESC-50 --ngpu 1 \\
           --experiments 'baseline robust_a15 robust_a10 robust_a5'" \
  --download false --experiments "baseline_cpu robust_a5_cpu" "$@"
