#!/usr/bin/env bash
# Stage 4: EXP/report.md (distribution, per-class tables) and EXP/figures/*.png of
# the variants of the run (python -m ugr.report --variants-of-run expands them: python -m
# ugr.pipeline.variants), written anew from their scores (a
# few seconds): per folder, and across the training seeds of each variant (--seeds).
# Also EXP/RESULTS.md (python -m ugr.report.results): the compact results to publish, with
# the command that reproduces them, the environment and each stage's wall time; a
# recipe publishes it by copying it to its folder (cp exp/RESULTS.md RESULTS.md).
set -euo pipefail
. scripts/setup.sh

# The run's command line, for RESULTS.md: ./run.sh with the options of the run that are not the defaults
# (the experiments always: each recipe's run.sh has its own default).
quote() {  # a value as the shell reads it back: bare when plain, else in single quotes
  if [[ $1 =~ ^[A-Za-z0-9_./:=,@+%-]+$ ]]; then printf '%s' "$1"; else printf "'%s'" "${1//\'/\'\\\'\'}"; fi
}
command="./run.sh --experiments $(quote "$experiments")"
[ -z "$tag" ] || command+=" --tag $(quote "$tag")"
[ -z "$seeds" ] || command+=" --seeds $(quote "$seeds")"
[ -z "$sweep" ] || command+=" --sweep $(quote "$sweep")"
[ -z "$override" ] || command+=" --override $(quote "$override")"
[ "$ngpu" = 0 ] || command+=" --ngpu $(quote "$ngpu")"
[ "$data" = data ] || command+=" --data $(quote "$data")"
[ "$exp" = exp ] || command+=" --exp $(quote "$exp")"

python -m ugr.report --exp-root "$exp" --recipe "$(basename "$PWD")" --command "$command" \
  --variants-of-run "${variant_options[@]}"
