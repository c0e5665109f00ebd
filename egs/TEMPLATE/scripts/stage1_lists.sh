#!/usr/bin/env bash
# Stage 1: the fixed validation and test lists of every experiment (and sweep
# point), in DATA/lists/<key>/ (experiments with the same data settings share
# one, and so do the seeds of one; see python -m ugr.pipeline.lists --help). Current
# lists are kept.
set -euo pipefail
. scripts/setup.sh
. scripts/wall_time.sh
wall_time_record lists   # $exp/log/lists.seconds, on success
python -m ugr.pipeline.lists --data "$data" --experiments "$experiments" --override "$override" --sweep "$sweep" \
  "${force_flag[@]}"
