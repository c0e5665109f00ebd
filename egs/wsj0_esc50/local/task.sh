# Sourced by the per-experiment stages (2, 3): picks this task's config from
# --configs by $UGR_TASK_ID and derives its folders. Needs: configs, exp, tag, data.
read -r -a task_configs <<< "$configs"
[ ${#task_configs[@]} -gt 0 ] || { echo "$0: --configs is empty" >&2; exit 1; }
task_id=${UGR_TASK_ID:-}
if [ -z "$task_id" ]; then
  [ ${#task_configs[@]} -eq 1 ] || { echo "$0: UGR_TASK_ID is not set; it picks one of the ${#task_configs[@]} configs (tools/launch.sh --array sets it)" >&2; exit 1; }
  task_id=0
fi
[ "$task_id" -ge 0 ] && [ "$task_id" -lt ${#task_configs[@]} ] \
  || { echo "$0: UGR_TASK_ID=$task_id is out of range for ${#task_configs[@]} configs" >&2; exit 1; }
config=${task_configs[$task_id]}
experiment=$(basename "$config" .yaml)${tag:+_$tag}
exp_dir=$exp/$experiment
lists_dir=$data/lists/$(python -m ugr.config lists-key "$config")
echo "task $task_id: $config -> $exp_dir (lists: $lists_dir)"
