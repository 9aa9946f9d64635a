#!/usr/bin/env bash
# sleet developer entry point: installs what the build needs (Debian
# packages, via apt-get, only when missing), configures, builds and runs.
#
#   tools/dev.sh main                     build, run the cross-process demo, the quick benchmarks
#                                         and the quick peer comparison
#   tools/dev.sh test                     build and run every test
#   tools/dev.sh test --sanitize thread   the same under ThreadSanitizer (or: address)
#   tools/dev.sh deps                     only install the packages
#   tools/dev.sh build [--sanitize S]     only configure and build
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cmd=${1:-main}
shift || true
sanitize=""
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize) sanitize=$2; shift 2 ;;
    --sanitize=*) sanitize=${1#*=}; shift ;;
    *) echo "tools/dev.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done

# Debian packages the build, tests and benchmarks need. The second line is
# for the peer comparison (bench/peers: its baselines, the Redis server and
# the iceoryx RouDi daemon it starts, the report's plots) and the profiling
# scripts (tools/perf_*.sh). libiceoryx-posh-dev brings libiceoryx-hoofs-dev;
# iceoryx is iox-roudi.
packages=(g++ cmake make catch2 libbenchmark-dev libatomic-queue-dev libcereal-dev libboost-dev liblmdb-dev libcli11-dev
  pkg-config libzmq3-dev libhiredis-dev redis-server iceoryx libiceoryx-posh-dev python3 gnuplot-nox linux-perf)

install_deps() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "== installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

jobs=$(nproc 2>/dev/null || echo 2)

build() {
  local dir="$root/build"
  local args=(-DCMAKE_BUILD_TYPE=Release -DSLEET_BUILD_BENCH=ON)
  if [ -n "$sanitize" ]; then
    dir="$root/build-$sanitize"
    args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLEET_SANITIZE="$sanitize" -DSLEET_BUILD_BENCH=OFF)
  fi
  cmake -S "$root" -B "$dir" "${args[@]}" >/dev/null
  cmake --build "$dir" -j "$jobs"
  builddir=$dir
}

case "$cmd" in
  deps) install_deps ;;
  build) install_deps; build ;;
  main)
    install_deps; build
    echo "== cross-process demo"
    "$builddir/examples/demo"
    echo "== quick benchmark: channels"
    "$builddir/bench/channel_bench" --quick
    echo "== quick benchmark: key-value store"
    "$builddir/bench/kv_bench" --quick
    echo "== quick benchmark: sync primitives"
    "$builddir/bench/sync_bench" --quick
    echo "== quick peer comparison (the full run and its report: README.md, Peer comparison)"
    "$builddir/bench/peers/peers_bench" --quick --out "$builddir/peers-quick.csv"
    python3 "$root/bench/peers/report.py" "$builddir/peers-quick.csv"
    ;;
  test)
    install_deps; build
    env_vars=()
    # TSan needs the address-space layout it was built for.
    if [ "$sanitize" = thread ] && setarch "$(uname -m)" -R true 2>/dev/null; then
      env_vars=(setarch "$(uname -m)" -R)
    fi
    # The ProcessManager forks from its supervisor thread and the child may
    # start threads (a passive channel's dispatcher); TSan refuses that by
    # default, though glibc supports it.
    if [ "$sanitize" = thread ]; then
      export TSAN_OPTIONS="die_after_fork=0${TSAN_OPTIONS:+ $TSAN_OPTIONS}"
    fi
    cd "$builddir"
    "${env_vars[@]}" ctest --output-on-failure --timeout 900
    ;;
  *) echo "usage: tools/dev.sh main|test|deps|build [--sanitize address|thread]" >&2; exit 2 ;;
esac
