# The generic options of every recipe, in one place: ugr.sh and each stage script
# source this file, then tools/parse_options.sh (a recipe's run.sh sets its own
# defaults, e.g. --experiments, before the user's options). A stage script takes
# any of them; ugr.sh passes each stage what it uses.
stage=0                  # first stage to run
stop_stage=4             # last stage to run
experiments=""           # experiment names: NAME is the config conf/**/NAME.yaml (any folder), in report order
fs=""                    # sample rate (Hz) from stage 0 on; empty: the configs' data.sample_rate
override=""              # config overrides '[EXPERIMENT:]SECTION.KEY=VALUE ...' (see ugr/pipeline/config.py)
tag=""                   # experiment folders exp/<experiment>_<tag> (a variant, e.g. with overrides)
seeds=""                 # training seeds: a count N (0..N-1) or a list 0,1,2; folders exp/<...>_seed<k> (ugr/pipeline/variants.py)
sweep=""                 # '[EXPERIMENT:]SECTION.KEY=V1,V2 ...': one variant per grid point (ugr/pipeline/variants.py)
ngpu=0                   # GPUs per training job (0: CPU; >1: DDP)
num_nodes=1              # nodes per training job, --ngpu GPUs each (slurm)
cmd_backend=local        # local (here, one stage after another) or slurm (sbatch jobs; see cmd.sh)
local_jobs=0             # local: experiments of a stage run at once (0: one per CPU core with --ngpu 0, else 1)
wait=true                # slurm: wait for the jobs and exit with their status
force=false              # redo the selected stages even when their outputs are current
data=data                # prepared corpus, manifests and lists
downloads=downloads      # the mini corpus and its downloads
exp=exp                  # experiment folders, logs, report

options_help() {  # the help of the generic options, with their current values as defaults
  echo "Generic options [defaults]:
  --stage N             first stage [$stage]
  --stop_stage N        last stage [$stop_stage]
  --experiments 'A B'   experiments in report order: A is the config conf/**/A.yaml, in any folder of
                        conf/ (cpu/, gpu/...), e.g. baseline_cpu: conf/cpu/baseline_cpu.yaml [$experiments]
  --fs HZ               sample rate from stage 0 on: sets data.sample_rate and model.sample_rate
                        of every experiment [the configs' data.sample_rate]
  --override 'K=V ...'  change config values: SECTION.KEY=VALUE, or EXPERIMENT:SECTION.KEY=VALUE for
                        one experiment; values are YAML, e.g. 'training.lr=5e-4 weighting.alpha=0.1'
  --tag T               experiment folders exp/<experiment>_T (name a variant) [none]
  --seeds N|LIST        train every variant once per training seed: N (seeds 0..N-1) or 0,1,2; folders
                        exp/<variant>_seed<k>, the same data lists for every seed [${seeds:-none}]
  --sweep 'K=V1,V2 ...' one variant per combination of the values, for every experiment or, as
                        EXPERIMENT:K=V1,V2, for one; e.g. 'robust_a5_cpu:weighting.alpha=0.05,0.1,0.2'
                        (folders exp/<experiment>_alpha0.05...; checked like --override) [${sweep:-none}]
  --ngpu N              GPUs per training job, 0 for CPU [$ngpu]
  --num_nodes N         slurm: nodes per training job, --ngpu GPUs each (Lightning DDP) [$num_nodes]
  --cmd_backend B       local (here, stage after stage) or slurm (sbatch jobs, see cmd.sh) [$cmd_backend]
  --local_jobs N        local: experiments of a stage at once, sharing the CPU cores (OMP_NUM_THREADS =
                        cores / N each); 0: as many as there are cores with --ngpu 0, else 1 [$local_jobs]
  --wait true|false     slurm: wait for the jobs, or print the job ids and return at once [$wait]
  --force true|false    redo complete stages [$force]
  --data DIR --downloads DIR --exp DIR   output folders [$data, $downloads, $exp]"
}
