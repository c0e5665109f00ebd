# Sourced first by every stage script (and by each recipe's local/data.sh, after
# it declares its corpus options): the generic options, the environment, logging.
# No Python here: each stage's Python resolves the experiments and variants itself.
. scripts/lib.sh
. scripts/options.sh
help_message="Usage: $0 [options]: a stage of ugr.sh, run through ./run.sh (see ./run.sh --help for the options)"
. tools/parse_options.sh
. ./path.sh
force_flag=()
if $force; then force_flag=(--force); fi
read -r -a exps <<< "$experiments"
# The variants of the run (experiments x sweep points x seeds; python -m ugr.pipeline.variants --help): each
# experiment NAME is the config conf/**/NAME.yaml (the one rule: ugr/pipeline/variants.py find_config).
variant_options=(--experiments "$experiments" --seeds "$seeds" --sweep "$sweep" --tag "$tag" --override "$override")
# A per-variant stage's options (python -m ugr.pipeline.task --help).
run_options=("${variant_options[@]}" --data "$data" --exp "$exp" --ngpu "$ngpu" --num-nodes "$num_nodes"
             "${force_flag[@]}")
