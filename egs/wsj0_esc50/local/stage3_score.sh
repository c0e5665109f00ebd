#!/usr/bin/env bash
# Stage 3: score one experiment (config number $UGR_TASK_ID of --configs) on
# its test list: EXP/<experiment>/scores/{test.csv,test_stats.json}.
# Complete when test_stats.json exists (written last, atomically).
set -euo pipefail
data=data
exp=exp
configs=""
tag=""
ngpu=0
average_last=0
force=false
help_message="Usage: UGR_TASK_ID=I $0 --configs 'conf/A.yaml ...' [--data DIR] [--exp DIR] [--tag T] [--ngpu N] [--average_last K] [--force true|false]"
. tools/parse_options.sh
. ./path.sh
. local/task.sh

stats=$exp_dir/scores/test_stats.json
if [ -f "$stats" ] && ! $force; then
  echo "stage3: $exp_dir is scored ($stats); skipping (--force true rescores)"
  exit 0
fi
args=()
[ "$average_last" -eq 0 ] || args+=(--average-last "$average_last")
[ "$ngpu" -eq 0 ] || args+=(--device cuda)
rm -f "$stats"
python -m ugr.score --exp-dir "$exp_dir" --data "$data" --lists "$lists_dir" "${args[@]}"
