#!/usr/bin/env bash
# Creates the project's virtual environment (tools/venv, ESPnet style) and
# installs ugr with everything it needs. Idempotent: when nothing changed since
# the last successful run it only says so.
set -euo pipefail

usage() {
  cat <<USAGE
Usage: tools/install.sh [--force]

Creates tools/venv (override with UGR_VENV=DIR) and installs, with every pip
call pinned by one constraints file:
  torch        2.13.0 CPU wheel, or the CUDA torch the base python already has
  asteroid     0.7.0 with --no-deps (its declared deps pull a broken torchaudio)
  ugr          editable, with every extra (all: recipes and docs) and the test tools (pyproject.toml)
Environment: PYTHON (base interpreter, default python3; one with a CUDA torch
gives the venv that torch), UGR_VENV.
  --force      reinstall even when the environment is up to date

An environment serves one checkout (its editable ugr is that checkout's code):
a UGR_VENV that serves another checkout is refused, never re-pointed. One in
use (a recipe of this checkout runs with it: tools/env.sh holds a shared lock
on DIR/.ugr-in-use.lock) is never rebuilt: wait for the run to end.
USAGE
}

die() { echo "install.sh: $*" >&2; exit 2; }
force=false
for arg in "$@"; do
  case $arg in
    -h|--help) usage; exit 0 ;;
    --force) force=true ;;
    *) die "unknown argument '$arg' (see --help)" ;;
  esac
done

tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
root=$(dirname "$tools_dir")
venv=${UGR_VENV:-$tools_dir/venv}
base_python=${PYTHON:-python3}
asteroid_version=0.7.0
cpu_torch=2.13.0

# A base interpreter that already has a CUDA torch keeps it: the venv sees the
# system site-packages and the constraints pin that exact version.
cuda_torch=$("$base_python" -c 'import torch; print(torch.__version__ if torch.version.cuda else "")' 2>/dev/null || true)

stamp_input=$(cat "$root/pyproject.toml" "${BASH_SOURCE[0]}"; "$base_python" --version; echo "cuda_torch=$cuda_torch")
stamp=$(printf '%s' "$stamp_input" | sha256sum | cut -d' ' -f1)
stamp_file=$venv/.ugr-install-stamp

# One check or build at a time (two recipes started together on a fresh machine:
# the second waits for the first's build, then finds it up to date).
mkdir -p "$venv"
exec {build_lock}>>"$venv/.ugr-build.lock"
flock "$build_lock"

# The checkout whose code the environment runs, asked from / (not from a checkout's folder).
served=$(cd / && "$venv/bin/python" -c \
  'import os, ugr; print(os.path.dirname(os.path.dirname(os.path.realpath(ugr.__file__))))' 2>/dev/null || true)
if [ -n "$served" ] && [ "$served" != "$root" ]; then
  die "$venv serves the checkout $served (its editable ugr is that checkout's code); using it here would run \
that code, and rebuilding it would swap the code under that checkout's runs. Give $root its own environment: \
unset UGR_VENV (then $tools_dir/venv), or set UGR_VENV to another folder"
fi

if ! $force && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] \
   && (cd / && "$venv/bin/python" -c 'import ugr, asteroid.models') 2>/dev/null; then
  echo "install.sh: $venv is up to date"
  exit 0
fi

if $force; then
  reason="--force"
elif [ -f "$stamp_file" ]; then
  reason="pyproject.toml, tools/install.sh, the base python or its torch changed"
else
  reason="it is not built, or not completely"
fi
exec {use_lock}>>"$venv/.ugr-in-use.lock"
flock -n -x "$use_lock" || die "$venv needs building ($reason), but a run uses it (tools/env.sh holds \
$venv/.ugr-in-use.lock); build it when that run has ended"
echo "install.sh: building $venv"
rm -f "$stamp_file"
if [ -n "$cuda_torch" ]; then
  "$base_python" -m venv --system-site-packages "$venv"
  torch_pin="torch==$cuda_torch"
else
  "$base_python" -m venv "$venv"
  torch_pin="torch==$cpu_torch"
fi
constraints=$venv/constraints.txt
echo "$torch_pin" > "$constraints"

pip=("$venv/bin/python" -m pip install --disable-pip-version-check -c "$constraints")
"${pip[@]}" -q --upgrade pip setuptools wheel
"${pip[@]}" -q "$torch_pin"
"${pip[@]}" -q -e "$root[all,test]"
"${pip[@]}" -q --no-deps "asteroid==$asteroid_version"

"$venv/bin/python" - <<'PY'
import torch, asteroid.models, asteroid.losses, pytorch_lightning, julius, soundfile, ugr
print(f"install.sh: torch {torch.__version__} (cuda: {torch.version.cuda}), "
      f"pytorch_lightning {pytorch_lightning.__version__}, soundfile {soundfile.__version__}")
PY
echo "$stamp" > "$stamp_file"
echo "install.sh: done ($venv)"
