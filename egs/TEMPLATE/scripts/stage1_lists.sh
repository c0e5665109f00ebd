#!/usr/bin/env bash
# Stage 1: the fixed validation and test lists of every experiment, in
# DATA/lists/<key>/ (experiments with the same data settings share one; see
# python -m ugr.lists --help). Current lists are kept.
set -euo pipefail
. scripts/setup.sh
python -m ugr.lists --data "$data" --override "$override" "${force_flag[@]}" "${config_files[@]}"
