#!/usr/bin/env bash
# Stage 2: train one variant (number $UGR_TASK_ID of python -m ugr.pipeline.variants). Complete
# when EXP/<experiment>/train.done exists and it was trained on this data folder;
# an interrupted training resumes from its last checkpoint; --force true trains
# from scratch. One run at a time per experiment folder (a second one stops).
set -euo pipefail
. scripts/setup.sh
. scripts/task.sh
. scripts/wall_time.sh
wall_time_record "train.$task_id"   # $exp/log/train.<task>.seconds, on success
if [ -f "$done_file" ] && ! $force; then
  python -m ugr.pipeline.provenance check --exp-dir "$exp_dir" --data "$data"   # trained on another data folder: stop
  log "stage 2: $exp_dir is trained ($done_file) on $data; skipping (--force true retrains from scratch)"
  wall_time_cancel   # the training's own time stays on record
  exit 0
fi
# Under a Slurm job of several tasks (one per GPU) this script runs once per
# task; task 0 alone clears the folder, long before any rank's Python (seconds
# of imports) writes to it.
if $force && [ -d "$exp_dir" ] && [ "${SLURM_PROCID:-0}" -eq 0 ]; then
  log "stage 2: --force true: removing $exp_dir to train from scratch"
  rm -rf "$exp_dir"
fi
python -m ugr.pipeline.train --config "$config" --override "$task_override" --exp-dir "$exp_dir" --data "$data" \
  --ngpu "$ngpu" --num-nodes "$num_nodes"
log "stage 2: trained $exp_dir"
