#!/usr/bin/env bash
# Installs what is missing (tools/install.sh is idempotent), then runs the test
# suite on pytest-xdist workers, one per core up to 4 (UGR_TEST_WORKERS=N sets
# it; -n 0 runs in this process). Arguments go to pytest, e.g. tools/test.sh -k reweight -x
set -euo pipefail
case "${1:-}" in
  -h|--help)
    echo "Usage: tools/test.sh [PYTEST_ARGS...]   (installs tools/venv if needed, then runs pytest on"
    echo "       UGR_TEST_WORKERS workers [one per core, up to 4]; -n 0 for none, e.g. with --pdb)"
    exit 0 ;;
esac
tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
root=$(dirname "$tools_dir")
"$tools_dir/install.sh"
venv=${UGR_VENV:-$tools_dir/venv}
cd "$root"
# Spinning OpenMP threads make CPU steps 10-30x slower whenever anything else runs
# (the recipe tests run training subprocesses beside pytest); wait passively.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# Run serially, the suite keeps one of 2 cores busy (user + sys time = wall time: it mostly waits on one
# subprocess, a recipe stage or its imports). Workers take whole files, in order (tests/conftest.py). At most 4:
# the recipe tests already run their trainings side by side on every core.
cores=$(nproc)
workers=${UGR_TEST_WORKERS:-$((cores < 4 ? cores : 4))}
exec "$venv/bin/python" -m pytest -n "$workers" --dist loadfile "$@"
