#!/usr/bin/env bash
# Stage 4: EXP/report.md (distribution and per-class tables) and EXP/figures/*.png
# for the experiments of --configs. Complete when report.md is newer than
# every experiment's scores.
set -euo pipefail
exp=exp
configs=""
tag=""
force=false
help_message="Usage: $0 --configs 'conf/A.yaml ...' [--exp DIR] [--tag T] [--force true|false]"
. tools/parse_options.sh
. ./path.sh
[ -n "$configs" ] || { echo "$0: --configs is empty" >&2; exit 1; }

names=()
up_to_date=true
for config in $configs; do
  name=$(basename "$config" .yaml)${tag:+_$tag}
  names+=("$name")
  stats=$exp/$name/scores/test_stats.json
  [ -f "$stats" ] || { echo "$0: $stats missing; run stage 3 for $name first" >&2; exit 1; }
  [ -f "$exp/report.md" ] && [ "$exp/report.md" -nt "$stats" ] || up_to_date=false
done
# The report's "Weights scored" section lists its experiments, one "- name: ..." line each:
# skip only when it covers exactly these, in this order.
covered=$( [ -f "$exp/report.md" ] && sed -n 's/^- \([^:]*\): .*/\1/p' "$exp/report.md" | tr '\n' ' ' || true)
if $up_to_date && ! $force && [ "$covered" = "${names[*]} " ]; then
  echo "stage4: $exp/report.md is up to date; skipping (--force true rewrites it)"
  exit 0
fi
python -m ugr.report --exp-root "$exp" --experiments "${names[@]}"
