#!/usr/bin/env bash
# Stage 3: score one variant (number $UGR_TASK_ID of python -m ugr.variants) on its test
# list: EXP/<experiment>/scores/{test.csv,test_stats.json}, and test_epochs.json
# under scoring.protocol epochs. Scores made with the current scoring settings,
# checkpoints and test list are kept; others are redone. Only a finished training
# on this data folder is scored, by one run at a time.
set -euo pipefail
. scripts/setup.sh
. scripts/task.sh
[ -f "$done_file" ] || die "$exp_dir is not trained (no $done_file): run stage 2 first"
python -m ugr.provenance check --exp-dir "$exp_dir" --data "$data"   # its model and scores are this data's
device=(--device cpu)
[ "$ngpu" -eq 0 ] || device=(--device cuda)
python -m ugr.score --exp-dir "$exp_dir" --data "$data" --config "$config" --override "$task_override" \
  "${device[@]}" "${force_flag[@]}" --no-progress
