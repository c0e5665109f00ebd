# Sourced by every recipe's path.sh: builds or checks the project's environment
# once per run (tools/install.sh is idempotent and prints one line when it is up
# to date), so a recipe sets itself up on a fresh machine, and puts its Python
# first on PATH. Python output is unbuffered, so logs are live and in order.
# The sourcing shell and its children (every stage, every job) hold a shared
# lock on the environment while they run, so that tools/install.sh never
# rebuilds it under them (it refuses, saying so).
#
# OpenMP's wait policy is left to the user. On a machine to itself the default
# (threads spin briefly while waiting) trains fastest: a CPU-preset step at the
# recipe's batch of 16 took 1.18 s, against 1.45 s with OMP_WAIT_POLICY=PASSIVE
# (bench/model_speed.py --configs cpu_preset --batch 16, 2 cores, load 0.6-1.6,
# 2026-12-07). When other jobs share the cores, spinning threads can make steps
# 10-30x slower: export OMP_WAIT_POLICY=PASSIVE then (tools/test.sh does, as its
# tests run side by side).
ugr_tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ugr_venv=${UGR_VENV:-$ugr_tools_dir/venv}
if [ -z "${UGR_ENV_CHECKED:-}" ]; then
  "$ugr_tools_dir/install.sh"
  export UGR_ENV_CHECKED=1
fi
exec {ugr_env_lock}>>"$ugr_venv/.ugr-in-use.lock"
flock -s "$ugr_env_lock"  # waits while tools/install.sh builds it
export PATH="$ugr_venv/bin:$PATH"
export PYTHONUNBUFFERED=1
