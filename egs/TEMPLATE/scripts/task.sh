# Sourced by the per-variant stages (2, 3): picks this task's variant (an
# experiment at one sweep point and seed; python -m ugr.pipeline.variants) by
# $UGR_TASK_ID (tools/launch.sh --array sets it), names its config, folder and
# overrides, and takes the folder's lock: one run at a time works on an
# experiment folder (a second one stops here, naming the first).
names=$(python -m ugr.pipeline.variants "${variant_options[@]}" names)
mapfile -t variants <<< "$names"
task_id=${UGR_TASK_ID:-}
if [ -z "$task_id" ]; then
  [ ${#variants[@]} -eq 1 ] || die "UGR_TASK_ID is not set; it picks one of the ${#variants[@]} variants (tools/launch.sh --array sets it)"
  task_id=0
fi
[ "$task_id" -ge 0 ] && [ "$task_id" -lt ${#variants[@]} ] || die "UGR_TASK_ID=$task_id is out of range for ${#variants[@]} variants"
task=$(python -m ugr.pipeline.variants "${variant_options[@]}" task "$task_id")
mapfile -t task <<< "$task"
config=${task[0]}
exp_dir=$exp/${task[1]}
task_override=${task[2]:-}
log "task $task_id: $config -> $exp_dir${task_override:+ (overrides: $task_override)}"
done_file=$(python -m ugr.pipeline.experiment_dir done "$exp_dir")   # the folder's file names: ugr/pipeline/experiment_dir.py

# The lock file beside the folder (.NAME.lock, so --force's removal keeps it) is the one python -m ugr.pipeline.train
# takes by itself; UGR_EXPERIMENT_LOCK tells it that this script holds it. Held for the rest of the stage
# script; the kernel releases it when the script ends, killed or not. Under a Slurm job of several tasks
# (one per GPU) task 0 holds it for all.
if [ "${SLURM_PROCID:-0}" -eq 0 ]; then
  lock=$(python -m ugr.pipeline.experiment_dir lock "$exp_dir")
  mkdir -p "$(dirname "$lock")"
  exec {lock_fd}>>"$lock"
  flock -n "$lock_fd" \
    || die "$exp_dir is in use by another run ($(cat "$lock" 2>/dev/null || echo 'holder unknown')); wait for it to end, or stop it (lock $lock)"
  echo "pid $$ on $(hostname) since $(date '+%Y-%m-%dT%H:%M:%S') (${0##*/})" > "$lock"
  UGR_EXPERIMENT_LOCK=$(realpath "$lock")
  export UGR_EXPERIMENT_LOCK
fi
