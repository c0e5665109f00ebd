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
  ugr          editable, with its dependencies and test extras (setup.py)
Environment: PYTHON (base interpreter, default python3), UGR_VENV.
  --force      reinstall even when the environment is up to date
USAGE
}

force=false
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  --force) force=true ;;
  "") ;;
  *) echo "install.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
esac

tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
root=$(dirname "$tools_dir")
venv=${UGR_VENV:-$tools_dir/venv}
base_python=${PYTHON:-python3}
asteroid_version=0.7.0
cpu_torch=2.13.0

# A base interpreter that already has a CUDA torch keeps it: the venv sees the
# system site-packages and the constraints pin that exact version.
cuda_torch=$("$base_python" -c 'import torch; print(torch.__version__ if torch.version.cuda else "")' 2>/dev/null || true)

stamp_input=$(cat "$root/setup.py" "${BASH_SOURCE[0]}"; "$base_python" --version; echo "cuda_torch=$cuda_torch")
stamp=$(printf '%s' "$stamp_input" | sha256sum | cut -d' ' -f1)
stamp_file=$venv/.ugr-install-stamp

if ! $force && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] \
   && "$venv/bin/python" -c 'import ugr, asteroid.models' 2>/dev/null; then
  echo "install.sh: $venv is up to date"
  exit 0
fi

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
"${pip[@]}" -q -e "$root[test]"
"${pip[@]}" -q --no-deps "asteroid==$asteroid_version"

"$venv/bin/python" - <<'PY'
import torch, asteroid.models, asteroid.losses, pytorch_lightning, julius, soundfile, ugr
print(f"install.sh: torch {torch.__version__} (cuda: {torch.version.cuda}), "
      f"pytorch_lightning {pytorch_lightning.__version__}, soundfile {soundfile.__version__}")
PY
echo "$stamp" > "$stamp_file"
echo "install.sh: done ($venv)"
