# Command-line options for bash scripts, with Kaldi's utils/parse_options.sh
# semantics. Source it AFTER the script has set every option variable to its
# default (and, optionally, `help_message`):
#
#   nj=4; use_gpu=false; help_message="Usage: $0 [--nj N] [--use-gpu true|false] DIR"
#   . tools/parse_options.sh
#
#   --foo-bar VALUE | --foo_bar VALUE   set the existing variable foo_bar
#   --config FILE                       source FILE (lines like `nj=8`)
#   --help | -h                         print $help_message, exit 0
#   --                                  end of options (it is consumed)
# Parsing stops at the first argument that is not an option; the rest stay in
# "$@". A variable whose default is true/false only accepts true/false, and one
# whose default is an integer only accepts integers, so `--stage two` or a typo
# in a flag fails at once instead of silently meaning something else. Errors exit 1.

__po_die() { echo "$0: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      printf '%s\n' "${help_message:-Usage: $0 [options] (this script documents no options)}"
      exit 0 ;;
    --) shift; break ;;
    --config)
      [ $# -ge 2 ] || __po_die "option --config needs a FILE"
      [ -f "$2" ] || __po_die "config file '$2' (from --config) does not exist"
      . "$2"
      shift 2 ;;
    --*=*)
      __po_die "option '$1': write '--name VALUE' (with a space), not '--name=VALUE'" ;;
    --?*)
      __po_name=${1#--}
      __po_name=${__po_name//-/_}
      [[ $__po_name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || __po_die "invalid option '$1'"
      # ${!name+set} is non-empty only for variables that exist, even if empty.
      [ -n "${!__po_name+set}" ] || __po_die "unknown option '$1' (see $0 --help)"
      [ $# -ge 2 ] || __po_die "option '$1' needs a value"
      if [[ ${!__po_name} == true || ${!__po_name} == false ]] \
         && [[ $2 != true && $2 != false ]]; then
        __po_die "option '$1' takes true or false, not '$2'"
      fi
      if [[ ${!__po_name} =~ ^-?[0-9]+$ ]] && ! [[ $2 =~ ^-?[0-9]+$ ]]; then
        __po_die "option '$1' takes an integer, not '$2'"
      fi
      printf -v "$__po_name" '%s' "$2"
      shift 2 ;;
    *) break ;;
  esac
done
unset -f __po_die
unset __po_name
