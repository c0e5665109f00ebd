#!/usr/bin/env bash
# The one job launcher behind every backend of the recipes' cmd.sh (the idea of
# ESPnet's run.pl / slurm.pl, plus dependencies, arrays and asynchronous runs).
# A stage script says WHAT to run and where its log goes; cmd.sh says HOW
# (backend, conf, kind), so the same recipe runs on a laptop and on a cluster.
set -euo pipefail

backend=local
conf=
kind=cpu
ngpu=0
nodes=1
name=
log=
array=
after=
jobid_file=
max_jobs=1
wait_for=none  # not waiting; --wait-for '' waits for nothing and succeeds
help_message="Usage:
  $0 [--backend local|slurm] [--conf FILE] [--kind KIND] [--ngpu N] [--nodes N] [--name NAME]
     --log FILE [--array N] [--max-jobs N] [--after ID[:ID...]] [--jobid-file FILE] -- COMMAND [ARGS...]
  $0 --wait-for ID[:ID...]

Runs COMMAND (an argument list, not a shell string) and keeps its output in
--log, which starts with the command line, host and start time and ends with the
exit code and elapsed time; Python output is unbuffered (PYTHONUNBUFFERED=1).
With --array N it runs N tasks: '%a' in --log becomes the task index 0..N-1,
and every task sees it as UGR_TASK_ID (0 without --array).

  --backend local  run now, up to --max-jobs tasks at once (default 1: one after
                   another); output goes to the log and to stderr (so progress bars
                   show; with several tasks at once, each finished line prefixed with
                   its log's name, progress bars as their last state). Tasks at once
                   share the CPU cores: each gets OMP_NUM_THREADS = cores / tasks
                   running (at least 1) unless OMP_NUM_THREADS is set. Exit status
                   non-zero if any task failed. --conf/--kind/--ngpu/--nodes/--name/
                   --after are ignored (local runs are already ordered). --jobid-file
                   gets 'local'.
  --backend slurm  submit with sbatch and return at once (--max-jobs is for local
                   runs only); prints the job id (also
                   written to --jobid-file). --conf FILE gives the sbatch options of
                   each --kind (see tools/slurm/slurm.conf.example; '{ngpu}' and
                   '{nodes}' are replaced by --ngpu and --nodes). When the job has
                   more than one task (e.g. --ntasks-per-node={ngpu}, one process
                   per GPU as Lightning's DDP on Slurm expects), COMMAND runs
                   under srun, once per task (SLURM_PROCID tells them apart); the
                   log's header and footer are written once.
                   --after IDS starts the job only if those
                   jobs succeed, and cancels it if one fails. The job runs in the
                   current directory with the current environment and is requeued
                   on preemption or node failure (the log gets a new header with
                   the restart count). The batch shell forwards SIGTERM and SIGUSR1
                   to COMMAND, so a conf line --signal=B:USR1@90 lets PyTorch
                   Lightning's SLURM auto-requeue checkpoint and resubmit the job
                   before its time limit.
  --name NAME      job name (default: the log's file name without .log and %a)
  --wait-for IDS   block until the Slurm jobs IDS (':'-separated; 'local' counts
                   as done, '' is no job) have ended; exit 0 iff all succeeded. A
                   job cancelled because its dependency failed counts as failed."

tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$tools_dir/parse_options.sh"
cmd=("$@")

die() { echo "$0: $*" >&2; exit 1; }

# ---- the log's first and last lines (also copied into Slurm job scripts) ----
ugr_command_line() {  # ugr_command_line WORD...: the words as a shell would read them back
  local word out=()
  for word in "$@"; do
    if [[ $word =~ ^[A-Za-z0-9_./=:,+@%-]+$ ]]; then out+=("$word"); else out+=("${word@Q}"); fi
  done
  echo "${out[*]}"
}
ugr_log_header() {  # ugr_log_header COMMAND_LINE EXTRA
  printf '# %s\n# Started at %s on %s%s\n#\n' "$1" "$(date)" "$(hostname)" "$2"
}
ugr_log_footer() {  # ugr_log_footer STATUS SECONDS
  printf '# Ended (code %s) at %s, elapsed time %s seconds\n' "$1" "$(date)" "$2"
}

write_atomically() {  # write_atomically FILE TEXT: via FILE.tmp.PID, removed if the write fails (full disk)
  local tmp="$1.tmp.$$" stale pid
  mkdir -p "$(dirname "$1")" || die "cannot create the folder of $1"
  for stale in "$1".tmp.*; do  # what killed launchers left: their pid is not running here
    pid=${stale##*.tmp.}
    [[ -f $stale && $pid =~ ^[0-9]+$ && $pid != "$$" ]] || continue
    kill -0 "$pid" 2>/dev/null || [ -d "/proc/$pid" ] || rm -f -- "$stale"
  done
  if ! { printf '%s\n' "$2" >"$tmp" && mv -f -- "$tmp" "$1"; } 2>/dev/null; then
    rm -f -- "$tmp"
    die "cannot write $1 (check that $(dirname "$1") is writable and has free space)"
  fi
}

check_ids() {  # check_ids OPTION IDS: job ids are Slurm ids, array tasks or 'local'
  local id ids
  IFS=: read -r -a ids <<<"$2"
  for id in "${ids[@]}"; do
    [[ $id =~ ^([0-9]+(_[0-9]+)?|local)$ ]] \
      || die "$1 '$2': '$id' is not a job id (expected Slurm ids like 123 or 123_4, or 'local', joined by ':')"
  done
}

slurm_ids() {  # slurm_ids IDS: the ids without 'local' ones (those stages already finished), ':'-joined
  local id ids out=()
  IFS=: read -r -a ids <<<"$1"
  for id in "${ids[@]}"; do [ "$id" = local ] || out+=("$id"); done
  (IFS=:; echo "${out[*]}")
}

# ------------------------------------------------------------------ --wait-for
# Polls slurmctld (there is no sacct here): a job has ended when every line of
# `scontrol show job` (one per array task) is in a final state.
wait_for_jobs() {
  local ids id out line state delay=0.2 running failed
  IFS=: read -r -a ids <<<"$(slurm_ids "$1")"
  [ ${#ids[@]} -gt 0 ] || return 0
  command -v scontrol >/dev/null \
    || die "--wait-for ${ids[*]}: these are Slurm job ids, but scontrol (Slurm's client) is not on PATH here; wait \
on a machine of the cluster (jobs of --backend local have ended when their command returns; their id is 'local')"
  while true; do
    running=0
    failed=()
    for id in "${ids[@]}"; do
      if ! out=$(scontrol show job -o "$id" 2>&1); then
        case $out in
          *"Invalid job id"*) die "cannot get the state of job $id: $out (slurmctld forgets jobs MinJobAge seconds \
after they end: see their logs)" ;;
          *) die "cannot get the state of job $id: $out" ;;
        esac
      fi
      while IFS= read -r line; do
        [[ $line =~ JobState=([A-Z_]+) ]] || die "unexpected 'scontrol show job' output: $line"
        state=${BASH_REMATCH[1]}
        case $state in
          COMPLETED) ;;
          FAILED|CANCELLED|TIMEOUT|NODE_FAIL|PREEMPTED|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE)
            failed+=("$(describe_job "$line" "$state")") ;;
          *) running=$((running + 1)) ;;
        esac
      done <<<"$out"
    done
    [ $running -gt 0 ] || break
    sleep "$delay"
    delay=$(awk -v d="$delay" 'BEGIN {print (d * 2 < 2) ? d * 2 : 2}')
  done
  if [ ${#failed[@]} -gt 0 ]; then
    local job
    for job in "${failed[@]}"; do echo "$0: $job" >&2; done
    return 1
  fi
}

describe_job() {  # describe_job LINE STATE: "job 12_1 (train) FAILED, exit code 1:0, reason ..., log ..."
  local id name="" reason="" code="" out=""
  [[ $1 =~ JobId=([0-9]+) ]] && id=${BASH_REMATCH[1]}
  [[ $1 =~ ArrayJobId=([0-9]+)\ ArrayTaskId=([0-9]+) ]] && id=${BASH_REMATCH[1]}_${BASH_REMATCH[2]}
  [[ $1 =~ JobName=([^ ]*) ]] && name=${BASH_REMATCH[1]}
  [[ $1 =~ Reason=([^ ]*) ]] && reason=${BASH_REMATCH[1]}
  [[ $1 =~ ExitCode=([^ ]*) ]] && code=${BASH_REMATCH[1]}
  [[ $1 =~ StdOut=([^ ]*) ]] && out=${BASH_REMATCH[1]}
  echo "job $id ($name) $2, exit code $code, reason $reason, log $out"
}

# ---------------------------------------------------------------------- local
run_task() {  # run_task INDEX: header, COMMAND's output, footer on stdout; returns COMMAND's status
  local start=$SECONDS status=0
  ugr_log_header "$(ugr_command_line "${cmd[@]}")" ", task $1"
  UGR_TASK_ID=$1 "${cmd[@]}" 2>&1 || status=$?
  ugr_log_footer "$status" $((SECONDS - start))
  return "$status"
}

prefix_lines() {  # prefix_lines TAG: each finished line of stdin as 'TAG text', a progress bar as its last state
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    while [[ $line == *$'\r' ]]; do line=${line%$'\r'}; done
    line=${line##*$'\r'}
    [ -z "$line" ] || printf '%s %s\n' "$1" "$line"
  done
}

run_local() {
  local task task_log tasks=${array:-1} at_once failed=() status_dir threads
  at_once=$((max_jobs < tasks ? max_jobs : tasks))
  if [ "$at_once" -eq 1 ]; then
    for ((task = 0; task < tasks; task++)); do
      task_log=${log//%a/$task}
      mkdir -p "$(dirname "$task_log")"
      if ! run_task "$task" | tee "$task_log" >&2; then
        failed+=("$task_log")
      fi
    done
  else
    # Concurrent tasks: each a background job in its own process group (set -m), so that it keeps Ctrl-C's
    # default action, which a script's background jobs otherwise ignore; an interrupt of this script is passed
    # on to every group. Each job records its status; their output is interleaved line by line.
    threads=${OMP_NUM_THREADS:-$(( $(nproc) / at_once ))}
    [ "$threads" -ge 1 ] 2>/dev/null || threads=1
    status_dir=$(mktemp -d)
    echo "$0: running $tasks tasks, $at_once at once, OMP_NUM_THREADS=$threads each; logs $log" >&2
    local pids=()
    trap 'for pid in "${pids[@]}"; do kill -INT -- "-$pid" 2>/dev/null || true; done; wait; rm -rf "$status_dir"; exit 130' INT TERM
    set -m
    for ((task = 0; task < tasks; task++)); do
      while [ "$(jobs -rp | wc -l)" -ge "$at_once" ]; do wait -n || true; done
      task_log=${log//%a/$task}
      mkdir -p "$(dirname "$task_log")"
      (
        set -o pipefail
        export OMP_NUM_THREADS=$threads
        status=0
        run_task "$task" | tee "$task_log" | prefix_lines "[$(basename "$task_log" .log)]" >&2 || status=$?
        echo "$status" >"$status_dir/$task"
      ) &
      pids+=($!)
    done
    wait
    set +m
    trap - INT TERM
    for ((task = 0; task < tasks; task++)); do
      [ "$(cat "$status_dir/$task" 2>/dev/null)" = 0 ] || failed+=("${log//%a/$task}")
    done
    rm -rf "$status_dir"
  fi
  [ -z "$jobid_file" ] || write_atomically "$jobid_file" local
  if [ ${#failed[@]} -gt 0 ]; then
    die "${#failed[@]} of $tasks task(s) failed; see ${failed[*]}"
  fi
}

# ---------------------------------------------------------------------- slurm
# sbatch options that launch.sh sets itself: a conf must not fight over them.
launcher_options='job-name|output|error|open-mode|chdir|export|requeue|no-requeue|array|dependency|kill-on-invalid-dep|parsable|wait'
kind_options=()
read_kind_options() {  # sets kind_options: the sbatch options of --kind from --conf
  [ -n "$conf" ] || die "--backend slurm needs --conf FILE (sbatch options per kind; start from $tools_dir/slurm/slurm.conf.example)"
  [ -f "$conf" ] || die "slurm conf '$conf' (--conf) does not exist; copy $tools_dir/slurm/slurm.conf.example there"
  local line section="" sections=() found=false n=0
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    line=${line%%#*}
    line=${line#"${line%%[![:space:]]*}"}
    line=${line%"${line##*[![:space:]]}"}
    [ -n "$line" ] || continue
    if [[ $line =~ ^\[([A-Za-z0-9_-]+)\]$ ]]; then
      section=${BASH_REMATCH[1]}
      sections+=("$section")
      [ "$section" != "$kind" ] || found=true
      continue
    fi
    [ -n "$section" ] || die "$conf:$n: '$line' comes before any [kind] section header"
    [[ $line =~ ^--?[A-Za-z][^[:space:]]*$ ]] \
      || die "$conf:$n: '$line' is not one sbatch option (write one per line, as --name=value)"
    [[ ! $line =~ ^--($launcher_options)(=|$) ]] \
      || die "$conf:$n: '$line' is set by launch.sh itself; remove it from the conf"
    [ "$section" = "$kind" ] || continue
    line=${line//\{ngpu\}/$ngpu}
    line=${line//\{nodes\}/$nodes}
    [[ ! $line =~ \{[A-Za-z_]+\} ]] || die "$conf:$n: unknown placeholder in '$line' (only {ngpu} and {nodes} are replaced)"
    kind_options+=("$line")
  done <"$conf"
  $found || die "kind '$kind' (--kind) has no [$kind] section in $conf (it has: ${sections[*]:-none}); add one or pick another kind"
}

job_script() {  # the batch script: runs COMMAND with the log header/footer, forwarding signals
  cat <<SCRIPT
#!/usr/bin/env bash
# Written by tools/launch.sh. Its output is the log (sbatch --output, append mode).
cmd=(${cmd[*]@Q})
$(declare -f ugr_command_line ugr_log_header ugr_log_footer)
export UGR_TASK_ID=\${SLURM_ARRAY_TASK_ID:-0}
start=\$SECONDS
ugr_log_header "\$(ugr_command_line "\${cmd[@]}")" ", task \$UGR_TASK_ID, slurm job \${SLURM_ARRAY_JOB_ID:-\$SLURM_JOB_ID}\${SLURM_ARRAY_TASK_ID:+_\$SLURM_ARRAY_TASK_ID}, restart \${SLURM_RESTART_COUNT:-0}"
# A job of several tasks (--ntasks-per-node, --nodes) starts COMMAND once per
# task with srun, which hands each its SLURM_PROCID (Lightning's DDP rank);
# srun forwards the signals below to every task. Since Slurm 22.05 srun does not
# inherit --cpus-per-task from sbatch: pass it on.
launcher=()
if [ "\${SLURM_NTASKS:-1}" -gt 1 ]; then
  launcher=(srun --kill-on-bad-exit=1 \${SLURM_CPUS_PER_TASK:+--cpus-per-task=\$SLURM_CPUS_PER_TASK})
fi
# COMMAND runs in the background so that the traps run while it works: bash
# delays traps until a foreground child exits.
"\${launcher[@]}" "\${cmd[@]}" 2>&1 &
child=\$!
interrupted=false
trap 'interrupted=true; kill -TERM \$child 2>/dev/null || true' TERM
trap 'interrupted=true; kill -USR1 \$child 2>/dev/null || true' USR1
# A trap ends 'wait' early, with 128+signal instead of COMMAND's status: wait
# again. If COMMAND died of the same signal (Slurm signals every process of the
# job), bash may have reaped it already and answer -1: then 128+signal stands.
wait \$child
status=\$?
while \$interrupted; do
  interrupted=false
  wait \$child
  code=\$?
  [ \$code -ge 0 ] || break
  status=\$code
done
ugr_log_footer "\$status" \$((SECONDS - start))
exit "\$status"
SCRIPT
}

submit_slurm() {
  local slurm_log task out id
  read_kind_options
  local options=("${kind_options[@]}")
  if [ -n "$array" ]; then
    slurm_log=$log  # Slurm expands %a itself
    options+=("--array=0-$((array - 1))")
    for ((task = 0; task < array; task++)); do
      mkdir -p "$(dirname "${log//%a/$task}")"
      : >"${log//%a/$task}"
    done
  else
    slurm_log=${log//%a/0}
    mkdir -p "$(dirname "$slurm_log")"
    : >"$slurm_log"
  fi
  local deps
  deps=$(slurm_ids "$after")
  [ -z "$deps" ] || options+=("--dependency=afterok:$deps" --kill-on-invalid-dep=yes)
  out=$(job_script | sbatch --parsable "${options[@]}" --job-name="$name" \
          --output="$slurm_log" --open-mode=append --chdir="$PWD" --export=ALL \
          --requeue 2>&1) \
    || die "sbatch failed for '$name' (options ${options[*]} from $conf [$kind]): $out"
  id=${out%%;*}
  [[ $id =~ ^[0-9]+$ ]] || die "sbatch printed '$out', not a job id"
  [ -z "$jobid_file" ] || write_atomically "$jobid_file" "$id"
  echo "$0: submitted '$name' as slurm job $id${array:+ (array of $array)}${deps:+ after $deps}; log $log" >&2
  echo "$id"
}

# ----------------------------------------------------------------------- main
# Python writes through at once: logs are live and keep the last lines of a
# killed job, and stdout and stderr stay in order (sbatch jobs inherit it).
export PYTHONUNBUFFERED=1

case $backend in
  local|slurm) ;;
  *) die "unknown backend '$backend' (--backend): use local or slurm" ;;
esac
[ -z "$after" ] || check_ids --after "$after"

if [ "$wait_for" != none ]; then
  check_ids --wait-for "$wait_for"
  [ ${#cmd[@]} -eq 0 ] || die "--wait-for takes no command (got: ${cmd[*]})"
  wait_for_jobs "$wait_for"
  exit
fi

[ -n "$log" ] || die "missing --log FILE (where the job's output goes); see --help"
[ ${#cmd[@]} -gt 0 ] || die "no command given: put it after '--' (see --help)"
[[ ! ${log//%a/} =~ % ]] || die "--log '$log': '%' may only appear as '%a' (the array task index)"
[ -z "$array" ] || [[ $array =~ ^[1-9][0-9]*$ ]] || die "--array '$array' must be a positive integer (the number of tasks)"
[[ $ngpu =~ ^[0-9]+$ ]] || die "--ngpu '$ngpu' must be a non-negative integer"
[[ $nodes =~ ^[1-9][0-9]*$ ]] || die "--nodes '$nodes' must be a positive integer"
[[ $max_jobs =~ ^[1-9][0-9]*$ ]] || die "--max-jobs '$max_jobs' must be a positive integer (local tasks at once)"
if [ -z "$name" ]; then
  name=$(basename "$log" .log)
  name=${name//%a/}
  name=${name//../.}
  name=${name%.}
fi

case $backend in
  local) run_local ;;
  slurm) submit_slurm ;;
esac
