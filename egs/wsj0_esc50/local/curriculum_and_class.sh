#!/usr/bin/env bash
# The second study: curriculum measured where its claim lives (early progress) and class bias in both
# designs of the authors' code, with group DRO beside it, at 4 training seeds (about 60 minutes on 2 CPU
# cores; the recipe's RESULTS_curriculum_and_class.md):
#   early progress  early_uniform, early_placebo (beta0 -0.001), early_curriculum at mixture granularity
#                   (beta0 -0.1 and -0.3), early_curriculum_source (beta0 -0.1): a validation every 4
#                   steps, 128 steps
#   class bias (a)  priors 25/25/50 over speech+speech, env+env, speech+env: class_a at gamma {speech: 3}
#                   and {env: 3} against class_a_none
#   class bias (b)  speech+env only: class_b (gamma {speech: 1}, the weights (1, 0)) and class_b_dro
#                   (group DRO over the coarse classes) against class_b_none
# Stages 0-4 of ./run.sh into exp/curriculum_and_class/ (report.md, RESULTS.md, figures/); any option of
# ./run.sh may follow, e.g. --seeds 6, --stage 4, --cmd_backend slurm.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case "${1:-}" in
  -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
exec ./run.sh --exp exp/curriculum_and_class --seeds 4 \
  --experiments 'early_uniform early_placebo early_curriculum early_curriculum_source class_a_none class_a class_b_none class_b class_b_dro' \
  --sweep 'early_curriculum:weighting.beta0=-0.1,-0.3 class_a:weighting.gamma={speech: 3},{env: 3}' "$@"
