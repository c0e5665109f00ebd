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
# OpenMP's wait policy is left to the user. On a machine to itself the default
# (threads spin briefly while waiting) trains fastest: a CPU-preset step took
# 0.31 s, against 0.76 s with OMP_WAIT_POLICY=PASSIVE (bench/model_speed.py, 2
# quiet cores). When other jobs share the cores, spinning threads can make steps
# 10-30x slower: export OMP_WAIT_POLICY=PASSIVE then (tools/test.sh does, as its
# tests run side by side).
