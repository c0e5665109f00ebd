#!/usr/bin/env bash
# Stage 4: EXP/report.md (distribution, per-class tables) and EXP/figures/*.png of
# the experiments of --experiments, written anew from their scores (a few seconds).
set -euo pipefail
. scripts/setup.sh
names=()
for name in "${exps[@]}"; do names+=("$name${tag:+_$tag}"); done
python -m ugr.report --exp-root "$exp" --experiments "${names[@]}"
