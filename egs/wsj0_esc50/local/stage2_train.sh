#!/usr/bin/env bash
# Stage 2: train one experiment: the config number $UGR_TASK_ID (from 0) of
# --configs, as set by tools/launch.sh for each task of the array job.
# Complete when EXP/<experiment>/train.done exists; an interrupted training
# resumes from its last epoch checkpoint.
set -euo pipefail
data=data
exp=exp
configs=""
tag=""
ngpu=0
num_nodes=1
force=false
help_message="Usage: UGR_TASK_ID=I $0 --configs 'conf/A.yaml ...' [--data DIR] [--exp DIR] [--tag T] [--ngpu N] [--num_nodes N] [--force true|false]"
. tools/parse_options.sh
. ./path.sh
. local/task.sh   # sets config, exp_dir, lists_dir from --configs and UGR_TASK_ID

if [ -f "$exp_dir/train.done" ] && ! $force; then
  echo "stage2: $exp_dir is trained ($exp_dir/train.done); skipping (--force true retrains from scratch)"
  exit 0
fi
# Under a Slurm job of several tasks (one per GPU) this script runs once per
# task; task 0 alone clears the folder, long before any rank's Python (seconds
# of imports) writes to it.
if $force && [ -d "$exp_dir" ] && [ "${SLURM_PROCID:-0}" -eq 0 ]; then
  echo "stage2: --force true: removing $exp_dir to train from scratch"
  rm -rf "$exp_dir"
fi
python -m ugr.train --config "$config" --exp-dir "$exp_dir" --data "$data" --lists "$lists_dir" --ngpu "$ngpu" --num-nodes "$num_nodes"
echo "stage2: trained $exp_dir"
