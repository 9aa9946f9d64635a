#!/usr/bin/env bash
# sleet developer entry point: installs what the build needs (Debian
# packages, via apt-get, only when missing), configures, builds and runs.
#
#   tools/dev.sh main                     build, run the cross-process demo, the quick benchmarks
#                                         and the quick peer comparison; print one screen: the demo,
#                                         the targets table, the peer table and where the full
#                                         reports went (build/reports/)
#   tools/dev.sh test                     build and run every test
#   tools/dev.sh test --sanitize thread   the same under ThreadSanitizer (or: address)
#   tools/dev.sh deps                     only install the packages
#   tools/dev.sh build [--sanitize S]     only configure and build
#
# SLEET_JOBS=N sets the build's parallelism (default: nproc).
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

# Debian packages the build, tests and benchmarks need. The third line is
# for the Python module (python/: pybind11, the headers of Debian's
# /usr/bin/python3, pytest for its tests). The second line is
# for the peer comparison (bench/peers: its baselines, the Redis server and
# the iceoryx RouDi daemon it starts, the report's plots) and the profiling
# scripts (tools/perf_*.sh). libiceoryx-posh-dev brings libiceoryx-hoofs-dev;
# iceoryx is iox-roudi. libnats-dev and nats-server: the NATS bridge and its tests.
packages=(g++ cmake make catch2 libbenchmark-dev libatomic-queue-dev libcereal-dev libboost-dev liblmdb-dev libcli11-dev
  libnats-dev nats-server
  pkg-config libzmq3-dev libhiredis-dev redis-server iceoryx libiceoryx-posh-dev python3 gnuplot-nox linux-perf
  pybind11-dev python3-dev python3-pytest)

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

jobs=${SLEET_JOBS:-$(nproc 2>/dev/null || echo 2)}

build() {
  local dir="$root/build"
  local args=(-DCMAKE_BUILD_TYPE=Release -DSLEET_BUILD_BENCH=ON)
  if [ -n "$sanitize" ]; then
    dir="$root/build-$sanitize"
    args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLEET_SANITIZE="$sanitize" -DSLEET_BUILD_BENCH=OFF)
  fi
  cmake -S "$root" -B "$dir" "${args[@]}" >/dev/null
  builddir=$dir
  if [ -n "${build_log:-}" ]; then  # quiet: the log to a file, its tail on failure
    mkdir -p "$(dirname "$build_log")"
    if ! cmake --build "$dir" -j "$jobs" >"$build_log" 2>&1; then
      tail -n 40 "$build_log"
      echo "== build FAILED (full log: $build_log)" >&2
      exit 1
    fi
  else
    cmake --build "$dir" -j "$jobs"
  fi
}

# main: runs one quick benchmark with its raw output in $reports/NAME.txt;
# records a failure instead of stopping, so the others still run.
failed=()
run_bench() {
  local name=$1
  shift
  printf ' %s' "$name"
  local rc=0
  "$@" >"$reports/$name.txt" 2>&1 || rc=$?
  [ $rc -eq 0 ] || failed+=("$name (exit $rc, log ${reports#"$root"/}/$name.txt)")
}

case "$cmd" in
  deps) install_deps ;;
  build) install_deps; build ;;
  main)
    reports="$root/build/reports"
    build_log="$reports/build.log"
    rm -rf "$reports"
    install_deps
    build
    b="$builddir/bench"
    warnings=$(grep -c 'warning:' "$build_log" || true)
    echo "== sleet main: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p'), $(nproc) CPUs;" \
      "build: Release, ${builddir#"$root"/}, $warnings warnings (log: ${build_log#"$root"/})"
    echo "== cross-process demo"
    "$builddir/examples/demo" || failed+=("demo (exit $?)")
    printf '== quick benchmarks (about 40 s):'
    for s in channel kv sync patterns; do
      run_bench "${s}_bench" "$b/${s}_bench" --quick --table-out="$reports/${s}_bench.md" \
        --benchmark_out="$reports/${s}_bench.json" --benchmark_out_format=json
    done
    run_bench peers_bench "$b/peers/peers_bench" --quick --out "$reports/peers-quick.csv"
    echo
    echo "== targets (quick)"
    tables=()
    for s in channel kv sync patterns; do
      [ -s "$reports/${s}_bench.md" ] && tables+=("$reports/${s}_bench.md")
    done
    if [ ${#tables[@]} -gt 0 ]; then
      python3 "$root/tools/summary.py" --out "$reports/summary.md" "${tables[@]}" || failed+=("tools/summary.py (exit $?)")
    fi
    echo "== peer comparison (quick; the full run: README.md, Peer comparison)"
    if [ -s "$reports/peers-quick.csv" ]; then
      python3 "$root/bench/peers/report.py" --summary "$reports/peers-quick.csv" || failed+=("bench/peers/report.py (exit $?)")
    fi
    r=${reports#"$root"/}
    echo "== full reports in $r/"
    echo "   targets and every ratio: {channel,kv,sync,patterns}_bench.md; merged targets: summary.md"
    echo "   raw rows: {channel,kv,sync,patterns}_bench.json (Google Benchmark JSON), *.txt (console output)"
    plots=$(cd "$reports" && ls peers-quick-*.png 2>/dev/null | paste -sd ' ' || true)
    echo "   peers: peers-quick.csv (raw), peers-quick.md; plots: ${plots:-none (gnuplot missing)}"
    echo "   full runs (every row, more rounds): ${b#"$root"/}/channel_bench --table-out=FILE (also kv_bench, sync_bench, patterns_bench)"
    if [ ${#failed[@]} -gt 0 ]; then
      echo "== main FAILED:" >&2
      printf '   %s\n' "${failed[@]}" >&2
      exit 1
    fi
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
