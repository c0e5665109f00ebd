#!/usr/bin/env bash
# The stages every ugr recipe shares (the pattern of ESPnet's egs2/TEMPLATE/enh1/enh.sh).
# A recipe's run.sh names its corpus options and calls this script through its
# relative link ./ugr.sh, in the recipe's folder, forwarding the user's options:
#
#   ./ugr.sh --corpus_options 'wsj0_2mix mode' --corpus_help "..." --mode min \
#            --experiments 'baseline_cpu robust_cpu' "$@"
#
# Stage 0 runs the recipe's own local/data.sh with the corpus options: the one
# corpus-specific stage, which must leave a data folder that meets the data
# contract (ugr/data/manifest.py; README "The data contract"). Stages 1-4 (lists,
# training, scoring, report) read only that contract and the experiment configs.
set -euo pipefail
. scripts/lib.sh

# The recipe's corpus options are declared before parsing, so that
# tools/parse_options.sh accepts them; --help is answered after parsing, so that
# it shows the recipe's defaults.
corpus_options=""
corpus_help=""
show_help=false
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --corpus_options) corpus_options=${2:-}; shift 2 ;;
    --corpus_help) corpus_help=${2:-}; shift 2 ;;
    -h|--help) show_help=true; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
set -- "${args[@]}"
. scripts/options.sh
for name in $corpus_options; do
  [[ $name =~ ^[a-z][a-z0-9_]*$ ]] || die "corpus option '$name' (from run.sh) must be a lower-case name"
  [ -z "${!name+set}" ] || die "corpus option --$name (from run.sh) clashes with a generic option or variable"
  printf -v "$name" '%s' ""
done
. tools/parse_options.sh
if $show_help; then
  cat <<HELP
Usage: ./run.sh [options]

Stages: 0 data (local/data.sh: the corpus -> data/, the data contract), 1 mixture lists,
2 training, 3 scoring, 4 report. A stage whose outputs are current says so and is
skipped (--force true redoes it); a killed training resumes from its last checkpoint.
Logs of every stage: \$exp/log/.

Corpus options of this recipe (stage 0):
${corpus_help:-  none}

$(options_help)
HELP
  exit 0
fi
[ $# -eq 0 ] || die "unexpected argument '$1' (see --help)"
[ "$stage" -le "$stop_stage" ] || die "--stage $stage is after --stop_stage $stop_stage: no stage to run"
[ "$ngpu" -ge 0 ] || die "--ngpu $ngpu must be >= 0"
[ "$num_nodes" -ge 1 ] || die "--num_nodes $num_nodes must be >= 1"
[ "$num_nodes" -eq 1 ] || [ "$ngpu" -gt 0 ] || die "--num_nodes $num_nodes needs --ngpu >= 1 (several nodes only for GPU training)"
[ -z "$fs" ] || [[ $fs =~ ^[1-9][0-9]*$ ]] || die "--fs '$fs' must be a sample rate in Hz, e.g. 16000"
case $cmd_backend in local|slurm) ;; *) die "--cmd_backend '$cmd_backend': use local or slurm" ;; esac
[ "$local_jobs" -ge 0 ] || die "--local_jobs $local_jobs must be >= 0 (0: one per CPU core)"
if [ "$local_jobs" -eq 0 ]; then
  # On the CPU, two 1-thread trainings side by side beat one 2-thread training after another (README
  # "Speed and memory"); GPU trainings share no device by default.
  if [ "$ngpu" -eq 0 ]; then local_jobs=$(nproc); else local_jobs=1; fi
fi
. ./cmd.sh   # cpu_cmd, gpu_cmd, wait_cmd for $cmd_backend
. ./path.sh

read -r -a exps <<< "$experiments"
[ ${#exps[@]} -gt 0 ] || die "--experiments is empty; name at least one config of conf/ (conf/**/NAME.yaml)"
if [ -n "$fs" ]; then
  override="data.sample_rate=$fs model.sample_rate=$fs${override:+ $override}"
fi
variant_options=(--experiments "$experiments" --seeds "$seeds" --sweep "$sweep" --tag "$tag" --override "$override")
# One call checks every variant's config (a typo stops the run now, not after hours; each name is the one file
# conf/**/NAME.yaml) and says how many variants there are and their one sample rate (ugr/pipeline/variants.py).
plan=$(python -m ugr.pipeline.variants "${variant_options[@]}" plan) || exit 1
{ read -r n_variants fs; read -r folder_names; } <<< "$plan"
[ "$n_variants" -le ${#exps[@]} ] || log "$n_variants experiment folders in $exp: $folder_names"
corpus_args=()
for name in $corpus_options; do corpus_args+=("--$name" "${!name}"); done

mkdir -p "$exp/log"
common=(--experiments "$experiments" --override "$override" --data "$data" --exp "$exp" --tag "$tag" --seeds "$seeds"
        --sweep "$sweep" --force "$force")
after=""    # the previous stage's job id(s): slurm chains the stages with afterok dependencies
job_ids=()  # every submitted stage's job id, for --wait

# launch NAME cpu|gpu ARRAY NGPU NODES -- COMMAND...: one stage as one job (an
# array job, task i = variant i of python -m ugr.pipeline.variants, when ARRAY > 0), after the previous stage's
# job. Kind gpu asks NGPU GPUs per node on NODES nodes, one task (process) per
# GPU; with --ngpu 0 the per-experiment stages are CPU jobs.
model_kind=cpu
[ "$ngpu" -eq 0 ] || model_kind=gpu
launch() {
  local name=$1 kind=$2 array=$3 job_ngpu=$4 job_nodes=$5; shift 6
  local jobid_file="$exp/log/$name.jobid" log_file="$exp/log/$name.log" extra=() cmd
  if [ "$array" -gt 0 ]; then extra+=(--array "$array" --max-jobs "$local_jobs"); log_file="$exp/log/$name.%a.log"; fi
  [ -z "$after" ] || extra+=(--after "$after")
  if [ "$kind" = gpu ]; then cmd=$gpu_cmd; extra+=(--ngpu "$job_ngpu" --nodes "$job_nodes"); else cmd=$cpu_cmd; fi
  rm -f "$jobid_file"
  log "stage $name: log $log_file"
  $cmd --name "ugr_$name" --log "$log_file" --jobid-file "$jobid_file" "${extra[@]}" -- "$@"
  if [ -s "$jobid_file" ]; then after=$(cat "$jobid_file"); job_ids+=("$after"); fi
}

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  launch data cpu 0 0 1 -- scripts/stage0_data.sh "${common[@]}" --fs "$fs" --downloads "$downloads" \
    -- "${corpus_args[@]}"
fi
if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  launch lists cpu 0 0 1 -- scripts/stage1_lists.sh "${common[@]}"
fi
if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  launch train $model_kind $n_variants "$ngpu" "$num_nodes" -- scripts/stage2_train.sh "${common[@]}" \
    --ngpu "$ngpu" --num_nodes "$num_nodes"
fi
if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  # Scoring uses one GPU: one process on one node.
  launch score $model_kind $n_variants "$((ngpu > 0 ? 1 : 0))" 1 -- scripts/stage3_score.sh "${common[@]}" \
    --ngpu "$((ngpu > 0 ? 1 : 0))"
fi
if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  launch report cpu 0 0 1 -- scripts/stage4_report.sh "${common[@]}"
fi

if [ "$cmd_backend" = slurm ] && [ ${#job_ids[@]} -gt 0 ]; then
  ids=$(IFS=:; echo "${job_ids[*]}")
  if $wait; then
    log "waiting for the Slurm jobs $ids (logs in $exp/log/)"
    $wait_cmd "$ids" || die "a Slurm job failed or was cancelled (see above)"
  else
    log "submitted Slurm jobs $ids (logs in $exp/log/); wait for them with:"
    echo "tools/launch.sh --backend slurm --wait-for $ids"
    exit 0
  fi
fi
if [ "$stop_stage" -ge 4 ] && [ -f "$exp/report.md" ]; then
  log "report: $(cd "$exp" && pwd)/report.md"
fi
