#!/usr/bin/env bash
# Stage 4: EXP/report.md (distribution, per-class tables) and EXP/figures/*.png of
# the variants of the run (python -m ugr.variants), written anew from their scores (a
# few seconds): per folder, and across the training seeds of each variant (--seeds).
set -euo pipefail
. scripts/setup.sh
names=$(python -m ugr.variants "${variant_options[@]}" names)
mapfile -t names <<< "$names"
python -m ugr.report --exp-root "$exp" --sweep "$sweep" --experiments "${names[@]}"
