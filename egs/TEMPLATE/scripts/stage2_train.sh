#!/usr/bin/env bash
# Stage 2: train one variant, number $UGR_TASK_ID of the run (python -m ugr.pipeline.variants; left
# unset when the run has one), in one Python process (python -m ugr.pipeline.task train): it
# resolves the variant, takes its folder's lock (one run at a time per experiment folder: a second
# one stops, naming the first), checks that a trained folder was trained on this data folder,
# then skips a finished training, resumes an interrupted one from its last checkpoint, or trains;
# --force true trains from scratch (removing the folder, only one of ours).
set -euo pipefail
. scripts/setup.sh
. scripts/wall_time.sh
task_id=${UGR_TASK_ID:-0}   # the range is checked in Python
index=()
[ -z "${UGR_TASK_ID:-}" ] || index=(--index "$UGR_TASK_ID")
wall_time_record "train.$task_id"   # $exp/log/train.<task>.seconds, on success
status=0
python -m ugr.pipeline.task train "${index[@]}" "${run_options[@]}" || status=$?
if [ "$status" -eq 3 ]; then   # ugr.pipeline.task's CURRENT: trained already, nothing done
  wall_time_cancel   # the training's own time stays on record
  exit 0
fi
exit "$status"
