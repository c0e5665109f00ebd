#!/usr/bin/env bash
# Stage 0: the recipe's corpus preparation (local/data.sh, the one corpus-specific
# stage; the arguments after -- are its corpus options), then the check that the
# data folder can serve every variant of every experiment: its rate, and every
# class and mixture type the configs name in every split they draw from.
set -euo pipefail
. scripts/setup.sh
. scripts/wall_time.sh
wall_time_record data   # $exp/log/data.seconds, on success
local/data.sh --data "$data" --fs "$fs" --downloads "$downloads" --force "$force" "$@"
python -m ugr.pipeline.variants "${variant_options[@]}" check --data "$data"
log "stage 0: $data serves ${exps[*]} (report: $data/prepare_report.json)"
