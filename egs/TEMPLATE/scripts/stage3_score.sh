#!/usr/bin/env bash
# Stage 3: score one variant, number $UGR_TASK_ID of the run (python -m ugr.pipeline.variants; left
# unset when the run has one), on its test list, in one Python process (python -m ugr.pipeline.task
# score): EXP/<experiment>/scores/{test.csv,test_stats.json}, and test_epochs.json under
# scoring.protocol epochs. Scores made with the current scoring settings, checkpoints and test list
# are kept; others are redone. Only a finished training on this data folder is scored, by one run
# at a time (the folder's lock).
set -euo pipefail
. scripts/setup.sh
. scripts/wall_time.sh
task_id=${UGR_TASK_ID:-0}   # the range is checked in Python
index=()
[ -z "${UGR_TASK_ID:-}" ] || index=(--index "$UGR_TASK_ID")
wall_time_record "score.$task_id"   # $exp/log/score.<task>.seconds, on success
status=0
python -m ugr.pipeline.task score "${index[@]}" "${run_options[@]}" || status=$?
if [ "$status" -eq 3 ]; then   # ugr.pipeline.task's CURRENT: the scores are current, kept
  wall_time_cancel   # the scoring's own time stays on record
  exit 0
fi
exit "$status"
