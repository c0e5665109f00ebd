#!/usr/bin/env bash
# Stage 2: train one variant, number $UGR_TASK_ID of the run (python -m ugr.pipeline.variants; left
# unset when the run has one), in one Python process (python -m ugr.pipeline.task train): it
# resolves the variant, takes its folder's lock (one run at a time per experiment folder: a second
# one stops, naming the first), checks that a trained folder was trained on this data folder,
# then skips a finished training, resumes an interrupted one from its last checkpoint, or trains;
# --force true trains from scratch (removing the folder, only one of ours).
set -euo pipefail
. scripts/setup.sh
. scripts/wall_time.sh
timed_task train   # scripts/wall_time.sh
