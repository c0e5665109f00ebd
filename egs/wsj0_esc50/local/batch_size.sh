#!/usr/bin/env bash
# The operating point of robust weighting against the batch size, with and without TERM's running
# normaliser: bsize_uniform, bsize_robust (alpha 0.2, the batch softmax) and bsize_robust_running (the
# running normaliser, decay 0.9) at batch sizes 2, 4 and 16, 2 training seeds (about 15 minutes on 2 CPU
# cores; the recipe's RESULTS_batch_size.md, its figure the operating points per batch size).
# Stages 0-4 of ./run.sh into exp/batch_size/; any option of ./run.sh may follow, e.g. --seeds 4.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case "${1:-}" in
  -h|--help) sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
exec ./run.sh --exp exp/batch_size --seeds 2 \
  --experiments 'bsize_uniform bsize_robust bsize_robust_running' --sweep 'training.batch_size=2,4,16' "$@"
