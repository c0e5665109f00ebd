#!/usr/bin/env bash
# UGR recipe: speech (WSJ0) + environmental sounds (ESC-50) separation with
# unified gradient reweighting. With no arguments it builds a small real-audio
# mini corpus and runs the CPU experiments end to end (about 15 minutes on
# 2 cores); give --wsj0/--esc50 and GPU configs for the paper's experiments.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

stage=0
stop_stage=4
wsj0=""                 # WSJ0 root (folders like wsj0/si_tr_s/...); empty: mini corpus
esc50=""                # ESC-50 release folder (audio/, meta/esc50.csv); empty: mini corpus
experiments="baseline_cpu robust_a5_cpu"   # config names in conf/ (without .yaml), report order
ngpu=0                  # GPUs per training job (0: CPU; >1: DDP)
num_nodes=1             # slurm: nodes per training job (each with --ngpu GPUs)
tag=""                  # suffix of the experiment folders: exp/<experiment>_<tag>
average_last=0          # score the mean of the last K epochs' weights (0: the config's scoring.average_last_k)
force=false             # redo the selected stages even when their outputs are complete
wait=true               # slurm backend: block until the last job ends and report its status
data=data               # prepared corpus, manifests and mixture lists
downloads=downloads     # mini corpus sources
exp=exp                 # experiment folders, report.md, figures/
cmd_backend=local       # local | slurm (see cmd.sh)

help_message="Usage: $0 [options]

Stages: 0 data preparation, 1 mixture lists, 2 training, 3 scoring, 4 report.
A stage whose outputs are complete says so and is skipped (--force true redoes it);
a killed training resumes from its last epoch checkpoint when run again.

Options (defaults in brackets):
  --stage N             first stage [$stage]
  --stop_stage N        last stage [$stop_stage]
  --wsj0 DIR            WSJ0 root [mini corpus]
  --esc50 DIR           ESC-50 release folder [mini corpus]
  --experiments 'A B'   configs conf/A.yaml conf/B.yaml, in report order [$experiments]
                        GPU (paper): baseline robust_a15 robust_a10 robust_a5 curriculum
                                     class_none class_speech3 class_env3
                        CPU preset:  baseline_cpu robust_a5_cpu (mini corpus, minutes)
  --ngpu N              GPUs per training job, 0 for CPU [$ngpu]
  --num_nodes N         slurm: nodes per training job, --ngpu GPUs each (Lightning DDP) [$num_nodes]
  --cmd_backend B       local (run here, in sequence) or slurm (sbatch jobs, see cmd.sh) [$cmd_backend]
  --tag T               experiment folders exp/<experiment>_T [none]
  --average_last K      score the mean of the last K epoch checkpoints, 0: from the config [$average_last]
  --force true|false    redo complete stages [$force]
  --wait true|false     slurm: wait for the jobs and exit with their status, or print
                        the job ids and return at once [$wait]
  --data DIR --downloads DIR --exp DIR   output folders [$data, $downloads, $exp]

Example (the paper's Table 1 on one GPU):
  $0 --wsj0 /corpora/wsj0 --esc50 /corpora/ESC-50 --ngpu 1 \\
     --experiments 'baseline robust_a15 robust_a10 robust_a5'"
. tools/parse_options.sh
. ./cmd.sh              # cpu_cmd, gpu_cmd, wait_cmd for $cmd_backend
[ $# -eq 0 ] || { echo "$0: unexpected argument '$1' (see --help)" >&2; exit 1; }
. ./path.sh

log() { echo "run.sh: $*"; }
read -r -a exps <<< "$experiments"
[[ $num_nodes =~ ^[1-9][0-9]*$ ]] || { echo "$0: --num_nodes '$num_nodes' must be a positive integer" >&2; exit 1; }
[ "$num_nodes" -eq 1 ] || [ "$ngpu" -gt 0 ] || { echo "$0: --num_nodes $num_nodes needs --ngpu >= 1 (several nodes only for GPU training)" >&2; exit 1; }
[ ${#exps[@]} -gt 0 ] || { echo "$0: --experiments is empty; name at least one config of conf/" >&2; exit 1; }
configs=()
for name in "${exps[@]}"; do
  [ -f "conf/$name.yaml" ] || { echo "$0: conf/$name.yaml not found (from --experiments); choose among: $(cd conf && ls *.yaml | sed 's/\.yaml$//' | tr '\n' ' ')" >&2; exit 1; }
  configs+=("conf/$name.yaml")
done
python -m ugr.config check "${configs[@]}"   # a typo stops the run now, not after hours

mkdir -p "$exp/log"
common=(--force "$force")
after=""   # the previous stage's job id(s): slurm chains the stages with afterok dependencies
job_ids=()  # every submitted stage's job id, for --wait

# launch NAME cpu|gpu ARRAY NGPU NODES -- COMMAND...: one stage as one job (an
# array job, task i = experiment i, when ARRAY > 0), after the previous stage's
# job. Kind gpu asks NGPU GPUs per node on NODES nodes, one task (process) per
# GPU; with --ngpu 0 the per-experiment stages are CPU jobs.
model_kind=cpu
[ "$ngpu" -eq 0 ] || model_kind=gpu
launch() {
  local name=$1 kind=$2 array=$3 job_ngpu=$4 job_nodes=$5; shift 6
  local jobid_file="$exp/log/$name.jobid" log_file="$exp/log/$name.log" extra=() cmd
  if [ "$array" -gt 0 ]; then extra+=(--array "$array"); log_file="$exp/log/$name.%a.log"; fi
  [ -z "$after" ] || extra+=(--after "$after")
  if [ "$kind" = gpu ]; then cmd=$gpu_cmd; extra+=(--ngpu "$job_ngpu" --nodes "$job_nodes"); else cmd=$cpu_cmd; fi
  rm -f "$jobid_file"
  log "stage $name: log $log_file"
  $cmd --name "ugr_$name" --log "$log_file" --jobid-file "$jobid_file" "${extra[@]}" -- "$@"
  if [ -s "$jobid_file" ]; then after=$(cat "$jobid_file"); job_ids+=("$after"); fi
}

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  launch data cpu 0 0 1 -- local/stage0_data.sh --wsj0 "$wsj0" --esc50 "$esc50" --data "$data" \
    --downloads "$downloads" "${common[@]}"
fi
if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  launch lists cpu 0 0 1 -- local/stage1_lists.sh --data "$data" --configs "${configs[*]}" "${common[@]}"
fi
if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  launch train $model_kind ${#configs[@]} "$ngpu" "$num_nodes" -- local/stage2_train.sh --data "$data" --exp "$exp" \
    --configs "${configs[*]}" --tag "$tag" --ngpu "$ngpu" --num_nodes "$num_nodes" "${common[@]}"
fi
if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  # Scoring uses one GPU: one process on one node.
  launch score $model_kind ${#configs[@]} "$((ngpu > 0 ? 1 : 0))" 1 -- local/stage3_score.sh --data "$data" --exp "$exp" \
    --configs "${configs[*]}" --tag "$tag" --ngpu "$ngpu" --average_last "$average_last" "${common[@]}"
fi
if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  launch report cpu 0 0 1 -- local/stage4_report.sh --exp "$exp" --configs "${configs[*]}" --tag "$tag" "${common[@]}"
fi

if [ "$cmd_backend" = slurm ] && [ ${#job_ids[@]} -gt 0 ]; then
  ids=$(IFS=:; echo "${job_ids[*]}")
  if $wait; then
    log "waiting for the Slurm jobs $ids (logs in $exp/log/)"
    $wait_cmd "$ids" || { log "a Slurm job failed or was cancelled (see above)"; exit 1; }
  else
    log "submitted Slurm jobs $ids (logs in $exp/log/); wait for them with:"
    echo "tools/launch.sh --backend slurm --wait-for $ids"
    exit 0
  fi
fi
if [ "$stop_stage" -ge 4 ] && [ -f "$exp/report.md" ]; then
  log "report: $(pwd)/$exp/report.md"
fi
