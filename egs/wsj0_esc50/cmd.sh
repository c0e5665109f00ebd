# How the recipe's stages run (ESPnet's cmd.sh). run.sh sources this file AFTER
# parsing its options, so `./run.sh --cmd_backend slurm` takes effect, and then
# runs every stage as
#   ${cpu_cmd} --log exp/.../log/NAME.log [--array N] [--after IDS] \
#              [--jobid-file FILE] -- COMMAND ARGS...
#   ${gpu_cmd} --ngpu N --log ... -- COMMAND ARGS...
#   ${wait_cmd} IDS     # block until those jobs end; fails if one failed
# (see tools/launch.sh --help). With `local` the stages run here, one after
# another; with `slurm` each is an sbatch job chained to the ones it needs,
# with the per-kind options of conf/slurm.conf (from
# tools/slurm/slurm.conf.example).

cmd_backend=${cmd_backend:-local}   # local | slurm

case $cmd_backend in
  local)
    cpu_cmd="tools/launch.sh --backend local --kind cpu"
    gpu_cmd="tools/launch.sh --backend local --kind gpu"
    ;;
  slurm)
    cpu_cmd="tools/launch.sh --backend slurm --conf conf/slurm.conf --kind cpu"
    gpu_cmd="tools/launch.sh --backend slurm --conf conf/slurm.conf --kind gpu"
    ;;
  *)
    echo "cmd.sh: unknown cmd_backend '$cmd_backend': use local or slurm" >&2
    exit 1
    ;;
esac
wait_cmd="tools/launch.sh --backend $cmd_backend --wait-for"
