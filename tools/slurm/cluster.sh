#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for the project's tests and for
# trying the recipes' `slurm` backend without a site cluster. Debian's Slurm
# (slurmctld + slurmd + client) and munge; everything the cluster writes (conf,
# munge key and socket, state, spool, logs, pid files) lives under one state
# folder, so it neither needs nor touches /etc/slurm and a system munged.
set -euo pipefail

usage() {
  cat <<USAGE
Usage: tools/slurm/cluster.sh install|start|stop|status|env

  install  apt-get install slurmctld slurmd slurm-client munge, if missing
  start    install if needed, write the conf, start munged, slurmctld and slurmd,
           wait until the node is idle (does nothing if already running)
  stop     scontrol shutdown, stop munged (does nothing if not running)
  status   say whether the cluster answers; exit 0 if it does, 1 if not
  env      print 'export SLURM_CONF=...' for: eval "\$(tools/slurm/cluster.sh env)"

Environment:
  UGR_SLURM_DIR         state folder (default: tools/slurm/run, git-ignored)
  UGR_SLURM_CTLD_PORT   slurmctld port (default 6817)
  UGR_SLURM_SLURMD_PORT slurmd port (default 6818)
Exit codes: 0 ok, 1 failure, 2 usage error, 3 not root,
            4 the Debian packages cannot be installed (archive unreachable).
Needs root: it installs packages and runs the daemons as root.
USAGE
}

tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state_dir=${UGR_SLURM_DIR:-$tools_dir/slurm/run}
ctld_port=${UGR_SLURM_CTLD_PORT:-6817}
slurmd_port=${UGR_SLURM_SLURMD_PORT:-6818}
conf=$state_dir/slurm.conf
munge_dir=$state_dir/munge
munge_socket=$munge_dir/munge.socket
node=$(hostname -s)
packages=(slurmctld slurmd slurm-client munge)
programs=(slurmctld slurmd sbatch scontrol sinfo munged mungekey)

log() { echo "cluster.sh: $*" >&2; }
die() { log "$*"; exit 1; }

require_root() {
  if [ "$(id -u)" -ne 0 ]; then
    log "needs root (it installs Debian packages and runs slurmctld/slurmd/munged); run it as root"
    exit 3
  fi
}

installed() {
  local p
  for p in "${programs[@]}"; do command -v "$p" >/dev/null || return 1; done
}

cmd_install() {
  require_root
  mkdir -p "$state_dir"
  if installed; then log "Slurm and munge already installed"; return; fi
  export DEBIAN_FRONTEND=noninteractive
  local apt=(apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends "${packages[@]}")
  # Update the package lists only when the packages are not found without it.
  if ! "${apt[@]}" >"$state_dir/apt.log" 2>&1; then
    if ! { apt-get -o DPkg::Lock::Timeout=120 update -qq && "${apt[@]}"; } >>"$state_dir/apt.log" 2>&1; then
      tail -n 5 "$state_dir/apt.log" >&2
      log "cannot install ${packages[*]} from the Debian archive (log: $state_dir/apt.log)"
      exit 4
    fi
  fi
  installed || die "installed ${packages[*]} but some of ${programs[*]} are still missing"
  log "installed ${packages[*]}"
}

# The cluster answers when the controller responds and the node is usable.
node_state() { SLURM_CONF=$conf sinfo -h -n "$node" -o %T 2>/dev/null | head -n 1; }
running() { [ -f "$conf" ] && SLURM_CONF=$conf scontrol ping >/dev/null 2>&1; }
healthy() {
  running && pid_alive "$state_dir/slurmd.pid" && pid_alive "$munge_dir/munged.pid" \
    && [[ $(node_state) =~ ^(idle|mixed|allocated|completing)$ ]]
}
pid_alive() {  # pid_alive PIDFILE (a zombie left to a non-reaping init counts as gone)
  local pid
  pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && [ -e "/proc/$pid" ] \
    && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$pid/stat" 2>/dev/null
}
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_conf() {
  local mem_mb cpus
  mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  cpus=$(nproc)
  mkdir -p "$state_dir"/{state,spool,log}
  cat >"$conf.tmp" <<CONF
# Written by tools/slurm/cluster.sh: a one-node cluster for tests.
ClusterName=ugr
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also delays the restart of a requeued job (default 120 s).
AuthInfo=socket=$munge_socket,cred_expire=10
StateSaveLocation=$state_dir/state
SlurmdSpoolDir=$state_dir/spool
SlurmctldPidFile=$state_dir/slurmctld.pid
SlurmdPidFile=$state_dir/slurmd.pid
SlurmctldLogFile=$state_dir/log/slurmctld.log
SlurmdLogFile=$state_dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# A job whose afterok dependency failed is cancelled instead of pending forever.
DependencyParameters=kill_invalid_depend
# Start batch jobs at once (the default batches them every 3 s).
SchedulerParameters=batch_sched_delay=0,sched_interval=2
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
# Finished jobs stay visible to 'scontrol show job' (there is no sacct) for 10 min.
MinJobAge=600
KillWait=5
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
  mv "$conf.tmp" "$conf"
}

start_munge() {
  if pid_alive "$munge_dir/munged.pid"; then return; fi
  install -d -m 0755 -o munge -g munge "$munge_dir"
  if [ ! -f "$munge_dir/munge.key" ]; then
    runuser -u munge -- mungekey --create --keyfile="$munge_dir/munge.key"
  fi
  runuser -u munge -- munged --socket="$munge_socket" --key-file="$munge_dir/munge.key" \
    --pid-file="$munge_dir/munged.pid" --log-file="$munge_dir/munged.log" \
    --seed-file="$munge_dir/munged.seed"
}

cmd_start() {
  cmd_install
  if healthy; then log "already running (SLURM_CONF=$conf)"; return; fi
  if running || pid_alive "$state_dir/slurmd.pid" || pid_alive "$munge_dir/munged.pid"; then
    log "a half-started cluster is left from before; stopping it first"
    cmd_stop
  fi
  local port
  for port in "$ctld_port" "$slurmd_port"; do
    if port_busy "$port"; then
      die "port $port is in use (another Slurm?); stop it, or pick free ports with UGR_SLURM_CTLD_PORT / UGR_SLURM_SLURMD_PORT"
    fi
  done
  local t0=$SECONDS
  write_conf
  start_munge
  # -c: start clean, without jobs left in the state folder by an earlier run.
  slurmctld -c -f "$conf"
  slurmd -c -f "$conf" -N "$node"
  local state="" tries=0
  until [ "$state" = idle ]; do
    tries=$((tries + 1))
    if [ $tries -gt 150 ]; then
      tail -n 5 "$state_dir"/log/*.log >&2 || true
      die "node $node is '$state', not idle after 30 s (logs: $state_dir/log/)"
    fi
    sleep 0.2
    state=$(node_state)
  done
  log "started node $node in $((SECONDS - t0)) s; eval \"\$($0 env)\" to use it"
}

wait_gone() {  # wait_gone PIDFILE: wait up to 10 s for the daemon to exit
  local i
  for i in $(seq 50); do pid_alive "$1" || return 0; sleep 0.2; done
  return 1
}

stop_daemon() {  # stop_daemon PIDFILE NAME: after a polite request, TERM by pid
  wait_gone "$1" && return
  kill "$(cat "$1")" 2>/dev/null || true
  wait_gone "$1" || die "$2 (pid $(cat "$1")) did not stop; kill it by hand"
}

cmd_stop() {
  require_root
  if running; then
    SLURM_CONF=$conf scontrol shutdown >/dev/null
  fi
  stop_daemon "$state_dir/slurmctld.pid" slurmctld
  stop_daemon "$state_dir/slurmd.pid" slurmd
  if pid_alive "$munge_dir/munged.pid"; then
    kill "$(cat "$munge_dir/munged.pid")" 2>/dev/null || true
    stop_daemon "$munge_dir/munged.pid" munged
  fi
  log "stopped (state folder $state_dir kept)"
}

cmd_status() {
  if healthy; then
    echo "running: node $node is $(node_state) (SLURM_CONF=$conf)"
  else
    echo "not running (state folder $state_dir)"
    return 1
  fi
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) echo "export SLURM_CONF=$(printf %q "$conf")" ;;
  -h|--help) usage ;;
  *) usage >&2; exit 2 ;;
esac
