# Sourced by the per-experiment stages (2, 3): picks this task's experiment from
# --experiments by $UGR_TASK_ID (tools/launch.sh --array sets it) and names its
# config and folder.
task_id=${UGR_TASK_ID:-}
if [ -z "$task_id" ]; then
  [ ${#exps[@]} -eq 1 ] || die "UGR_TASK_ID is not set; it picks one of the ${#exps[@]} experiments (tools/launch.sh --array sets it)"
  task_id=0
fi
[ "$task_id" -ge 0 ] && [ "$task_id" -lt ${#exps[@]} ] || die "UGR_TASK_ID=$task_id is out of range for ${#exps[@]} experiments"
experiment=${exps[$task_id]}
config=conf/$experiment.yaml
exp_dir=$exp/$experiment${tag:+_$tag}
log "task $task_id: $config -> $exp_dir"
