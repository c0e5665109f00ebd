#!/usr/bin/env bash
# Stage 3: score one variant, number $UGR_TASK_ID of the run (python -m ugr.pipeline.variants; left
# unset when the run has one), on its test list, in one Python process (python -m ugr.pipeline.task
# score): EXP/<experiment>/scores/{test.csv,test_stats.json}, and test_epochs.json under
# scoring.protocol epochs. Scores made with the current scoring settings, checkpoints and test list
# are kept; others are redone. Only a finished training on this data folder is scored, by one run
# at a time (the folder's lock).
set -euo pipefail
. scripts/setup.sh
. scripts/wall_time.sh
timed_task score   # scripts/wall_time.sh
