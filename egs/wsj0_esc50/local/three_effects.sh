#!/usr/bin/env bash
# The three effects of the paper on the mini corpus, each against its uniform reference, at 3
# training seeds (about 45 minutes on 2 CPU cores; README "The three effects on the mini corpus"):
#   robust      study_robust at alpha 0.1, 0.2, 0.4 against study_baseline
#   curriculum  study_curriculum, linear and exponential schedules, against study_baseline
#   class bias  study_class at gamma {speech: 3} and {env: 3} against study_class_none
# Stages 0-4 of ./run.sh into exp/three_effects/ (report.md, figures/); any option of ./run.sh
# may follow, e.g. --seeds 5, --stage 3, --cmd_backend slurm.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case "${1:-}" in
  -h|--help) sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
exec ./run.sh --exp exp/three_effects --seeds 3 \
  --experiments 'study_baseline study_robust study_curriculum study_class_none study_class' \
  --sweep "study_robust:weighting.alpha=0.1,0.2,0.4 study_curriculum:weighting.schedule=linear,exponential \
study_class:weighting.gamma={speech: 3},{env: 3}" "$@"
