# Sourced by tools/perf_record.sh and tools/perf_stat.sh: finds perf, checks
# that it may be used here, builds the profile build (CMakePresets.json,
# preset "profile": optimised, -g, frame pointers) and resolves a benchmark
# name to its binary.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
profile_dir="$root/build-profile"

# perf_require: one line and exit 1 when perf is missing or not permitted.
perf_require() {
  local me=$1
  if ! command -v perf >/dev/null 2>&1; then
    echo "$me: perf is not installed (Debian: apt-get install linux-perf)" >&2
    exit 1
  fi
  if ! perf stat -e task-clock -o /dev/null -- true >/dev/null 2>&1; then
    local paranoid
    paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo '?')
    echo "$me: perf is installed but not permitted here (kernel.perf_event_paranoid=$paranoid; run as root or" \
         "'sysctl kernel.perf_event_paranoid=1'; in a container the seccomp profile may block perf_event_open)" >&2
    exit 1
  fi
}

# perf_binary NAME: the path of a benchmark (channel_bench, kv_bench,
# peers_bench) in the profile build, built first if needed; any other NAME
# is taken as a program path (a service that links sleet).
perf_binary() {
  local name=$1 target=""
  case "$name" in
    channel_bench | kv_bench) target=$name; bin="$profile_dir/bench/$name" ;;
    peers_bench) target=$name; bin="$profile_dir/bench/peers/$name" ;;
    *)
      bin=$(command -v "$name" 2>/dev/null || true)
      if [ -z "$bin" ] || [ ! -x "$bin" ]; then
        echo "perf: '$name' is neither channel_bench, kv_bench, peers_bench nor a program" >&2
        exit 2
      fi
      return 0
      ;;
  esac
  echo "== profile build ($profile_dir): $target" >&2
  (cd "$root" && cmake --preset profile >/dev/null && cmake --build --preset profile --target "$target" >&2)
}

# perf_start ME USAGE NAME [ARGS...]: checks perf, builds and resolves NAME
# to $bin; its arguments go to the array $args.
perf_start() {
  local me=$1 usage=$2
  shift 2
  if [ $# -lt 1 ]; then
    echo "usage: $usage" >&2
    exit 2
  fi
  perf_require "$me"
  perf_binary "$1"
  shift
  args=("$@")
}
