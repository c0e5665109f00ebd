# Sourced by run.sh and every stage script: puts the project's Python on PATH.
# The first script of a run also builds or checks the environment
# (tools/install.sh is idempotent and prints one line when it is up to date),
# so ./run.sh sets itself up on a fresh machine.
recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -z "${UGR_ENV_CHECKED:-}" ]; then
  "$recipe_dir/tools/install.sh"
  export UGR_ENV_CHECKED=1
fi
export PATH="${UGR_VENV:-$recipe_dir/tools/venv}/bin:$PATH"
export PYTHONUNBUFFERED=1
# OpenMP threads that spin while waiting turn any other load on a small machine
# (a data worker, another job) into 10-30x slower training steps (measured on
# 2 cores: 15-74 s instead of 2-3 s per CPU-preset step); passive waiting avoids it.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
