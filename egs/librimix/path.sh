# Sourced by ugr.sh and every stage: the project's environment (tools/env.sh builds it
# on first use). Add this recipe's own tools here, e.g. sph2pipe for WSJ0's .wv1 files:
#   export PATH=/opt/kaldi/tools/sph2pipe_v2.5:$PATH
. "$(dirname "${BASH_SOURCE[0]}")/tools/env.sh"
