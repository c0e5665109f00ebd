# Sourced by the stage scripts 0-3: the stage's wall time, for EXP/RESULTS.md, and stages 2-3's timed task.
#
#   wall_time_record NAME   # right after the stage's setup: on a successful exit (status 0) the script's
#                           # wall time ($SECONDS) is written to $exp/log/NAME.seconds, atomically
#   wall_time_cancel        # the stage did no work (its outputs were current): keep the last record,
#                           # the time of the run that did it
#
# A failed or killed stage leaves the last record as it was. The exit status of the stage is never changed.
wall_time_file=""

wall_time_record() {
  wall_time_file="$exp/log/$1.seconds"
  trap '_wall_time_write $?' EXIT
}

wall_time_cancel() {
  trap - EXIT
}

_wall_time_write() {
  local status=$1 dir tmp
  [ "$status" -eq 0 ] && [ -n "$wall_time_file" ] || return 0
  dir=$(dirname "$wall_time_file")
  # Written beside the record, then renamed: a reader never sees a half-written number.
  # (A plain redirection, not mktemp: the file gets the umask's mode, readable by the group as the logs are.)
  tmp="$dir/.${wall_time_file##*/}.$$"
  { mkdir -p "$dir" && echo "$SECONDS" > "$tmp" && mv -f "$tmp" "$wall_time_file"; } 2>/dev/null \
    || rm -f "$tmp" 2>/dev/null || true
  return 0
}

# timed_task STAGE: stages 2 and 3, one Python process for task $UGR_TASK_ID of the run (python -m
# ugr.pipeline.task STAGE; UGR_TASK_ID left unset when the run has one variant, its range checked in
# Python), its wall time recorded as $exp/log/STAGE.<task>.seconds; the task's exit status 3 (CURRENT:
# trained or scored already, nothing done) keeps the record of the run that did the work and exits 0.
timed_task() {
  local stage=$1 index=() status=0
  [ -z "${UGR_TASK_ID:-}" ] || index=(--index "$UGR_TASK_ID")
  wall_time_record "$stage.${UGR_TASK_ID:-0}"
  python -m ugr.pipeline.task "$stage" "${index[@]}" "${run_options[@]}" || status=$?
  if [ "$status" -eq 3 ]; then
    wall_time_cancel
    exit 0
  fi
  exit "$status"
}
