# Sourced by every recipe's path.sh: builds or checks the project's environment
# once per run (tools/install.sh is idempotent and prints one line when it is up
# to date), so a recipe sets itself up on a fresh machine, and puts its Python
# first on PATH. Python output is unbuffered, so logs are live and in order.
# The sourcing shell and its children (every stage, every job) hold a shared
# lock on the environment while they run, so that tools/install.sh never
# rebuilds it under them (it refuses, saying so).
#
# OpenMP's wait policy is left to the user. On a machine to itself the default
# (threads spin briefly while waiting) trains fastest, as waking passive threads
# for each of the model's many short parallel regions costs more than spinning.
# When other jobs share the cores, spinning threads waiting for a descheduled
# sibling make steps many times slower: export OMP_WAIT_POLICY=PASSIVE then
# (tools/test.sh does, as its tests run side by side). Figures: bench/README.md.
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
