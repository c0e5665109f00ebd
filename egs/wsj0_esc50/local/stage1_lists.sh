#!/usr/bin/env bash
# Stage 1: the fixed, seeded validation and test mixture lists. Experiments
# whose data settings agree share one folder DATA/lists/<key>/ (so their test
# scores compare the same mixtures); the key comes from `python -m ugr.config lists-key`.
# A list is complete when its file exists (the lists are written atomically).
set -euo pipefail
data=data
configs=""
force=false
help_message="Usage: $0 --configs 'conf/A.yaml ...' [--data DIR] [--force true|false]"
. tools/parse_options.sh
. ./path.sh
[ -n "$configs" ] || { echo "$0: --configs is empty" >&2; exit 1; }

for config in $configs; do
  key=$(python -m ugr.config lists-key "$config")
  dir=$data/lists/$key
  mkdir -p "$dir"
  for split in valid test; do
    list=$dir/$split.csv
    if [ -f "$list" ] && ! $force; then
      echo "stage1: $list exists ($config); skipping"
      continue
    fi
    line=$(python -m ugr.config mixture-args "$config" "$split")
    read -r -a args <<< "$line"
    python -m ugr.data.mixtures --data "$data" "${args[@]}" --out "$list"
    echo "stage1: wrote $list ($config)"
  done
done
