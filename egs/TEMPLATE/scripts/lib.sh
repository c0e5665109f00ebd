# Sourced by ugr.sh and every stage script: logging with time and file:line (as ESPnet's enh.sh).
log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }
die() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) ERROR: $*" >&2; exit 1; }
