# How the stages run (ESPnet's cmd.sh), sourced by ugr.sh after option parsing so that
# --cmd_backend takes effect: local (here, one stage after another) or slurm (sbatch jobs
# with the per-kind options of conf/slurm.conf; see tools/launch.sh --help). The job
# commands have the same names on every backend.
cpu_cmd="tools/launch.sh --backend $cmd_backend --conf conf/slurm.conf --kind cpu"
gpu_cmd="tools/launch.sh --backend $cmd_backend --conf conf/slurm.conf --kind gpu"
wait_cmd="tools/launch.sh --backend $cmd_backend --wait-for"
