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
force=false
help_message="Usage: UGR_TASK_ID=I $0 --configs 'conf/A.yaml ...' [--data DIR] [--exp DIR] [--tag T] [--ngpu N] [--force true|false]"
. tools/parse_options.sh
. ./path.sh
. local/task.sh   # sets config, exp_dir, lists_dir from --configs and UGR_TASK_ID

if [ -f "$exp_dir/train.done" ] && ! $force; then
  echo "stage2: $exp_dir is trained ($exp_dir/train.done); skipping (--force true retrains from scratch)"
  exit 0
fi
if $force && [ -d "$exp_dir" ]; then
  echo "stage2: --force true: removing $exp_dir to train from scratch"
  rm -rf "$exp_dir"
fi
python -m ugr.train --config "$config" --exp-dir "$exp_dir" --data "$data" --lists "$lists_dir" --ngpu "$ngpu"
echo "stage2: trained $exp_dir"
