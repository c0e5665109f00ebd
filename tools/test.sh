#!/usr/bin/env bash
# Installs what is missing (tools/install.sh is idempotent), then runs the test
# suite. Arguments go to pytest, e.g. tools/test.sh -k reweight -x
set -euo pipefail
case "${1:-}" in
  -h|--help)
    echo "Usage: tools/test.sh [PYTEST_ARGS...]   (installs tools/venv if needed, then runs pytest)"
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
exec "$venv/bin/python" -m pytest "$@"
