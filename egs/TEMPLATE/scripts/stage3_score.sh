#!/usr/bin/env bash
# Stage 3: score one variant (number $UGR_TASK_ID of python -m ugr.pipeline.variants) on its test
# list: EXP/<experiment>/scores/{test.csv,test_stats.json}, and test_epochs.json
# under scoring.protocol epochs. Scores made with the current scoring settings,
# checkpoints and test list are kept; others are redone. Only a finished training
# on this data folder is scored, by one run at a time.
set -euo pipefail
. scripts/setup.sh
. scripts/task.sh
. scripts/wall_time.sh
wall_time_record "score.$task_id"   # $exp/log/score.<task>.seconds, on success
[ -f "$done_file" ] || die "$exp_dir is not trained (no $done_file): run stage 2 first"
python -m ugr.pipeline.provenance check --exp-dir "$exp_dir" --data "$data"   # its model and scores are this data's
device=(--device cpu)
[ "$ngpu" -eq 0 ] || device=(--device cuda)
stats_file=$exp_dir/scores/test_stats.json   # ugr.pipeline.score's STATS_FILE
stats_before=$(stat -c %y "$stats_file" 2>/dev/null || true)
python -m ugr.pipeline.score --exp-dir "$exp_dir" --data "$data" --config "$config" --override "$task_override" \
  "${device[@]}" "${force_flag[@]}" --no-progress
if [ -n "$stats_before" ] && [ "$(stat -c %y "$stats_file" 2>/dev/null || true)" = "$stats_before" ]; then
  wall_time_cancel   # current scores kept: the scoring's own time stays on record
fi
