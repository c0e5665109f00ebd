# Sourced first by every stage script (and by each recipe's local/data.sh, after
# it declares its corpus options): the generic options, the environment, logging.
. scripts/lib.sh
. scripts/options.sh
help_message="Usage: $0 [options]: a stage of ugr.sh, run through ./run.sh (see ./run.sh --help for the options)"
. tools/parse_options.sh
. ./path.sh
force_flag=()
if $force; then force_flag=(--force); fi
read -r -a exps <<< "$experiments"
# Each experiment's config, conf/**/NAME.yaml (the one rule: ugr/pipeline/variants.py find_config).
config_list=$(python -m ugr.pipeline.variants --experiments "$experiments" configs) || exit 1
mapfile -t config_files <<< "$config_list"
# The variants of the run (experiments x sweep points x seeds; python -m ugr.pipeline.variants --help).
variant_options=(--experiments "$experiments" --seeds "$seeds" --sweep "$sweep" --tag "$tag" --override "$override")
