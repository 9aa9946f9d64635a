#!/usr/bin/env bash
# Runs a benchmark (or any program) under `perf stat` and prints each counter
# per message: cycles, instructions, cache misses, context switches, CPU
# migrations, page faults and, where the tracepoint may be used, futex
# system calls.
#
#   tools/perf_stat.sh peers_bench --only sleet --workload throughput --payload 64
#   tools/perf_stat.sh --messages 10000000 /path/to/your_service --its-args
#
# The message count comes from --messages N or from a line "messages: N" in
# the program's output (peers_bench prints one). Counters cover the program
# and every process it forks. A counter the machine cannot count (a VM
# without a virtual PMU has no cycles/instructions/cache-misses) is shown
# as <not supported>, with one line saying why; the others still count.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/perf_common.sh"

messages=""
if [ "${1:-}" = --messages ]; then
  messages=$2
  shift 2
fi
perf_start perf_stat "tools/perf_stat.sh [--messages N] channel_bench|kv_bench|peers_bench|PROGRAM [ARGS...]" "$@"

events=cycles,instructions,cache-misses,context-switches,cpu-migrations,page-faults,task-clock
if perf stat -e syscalls:sys_enter_futex -o /dev/null -- true >/dev/null 2>&1; then
  events=$events,syscalls:sys_enter_futex
  futex_note=""
else
  futex_note="futex system calls: the syscalls:sys_enter_futex tracepoint is not available here (needs root or tracefs access)"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
perf stat -x, -o "$tmp/stat" -e "$events" -- "$bin" "${args[@]}" | tee "$tmp/out"

if [ -z "$messages" ]; then
  messages=$(sed -n 's/^messages: \([0-9][0-9]*\).*/\1/p' "$tmp/out" | tail -n 1)
fi
if [ -z "$messages" ] || [ "$messages" -eq 0 ]; then
  echo "perf_stat: no message count (pass --messages N, or print a line 'messages: N'); totals only" >&2
  messages=0
fi

echo
echo "== perf stat per message ($messages messages, every process of the run)"
awk -F, -v n="$messages" '
  /^#/ || NF < 3 { next }
  {
    value = $1; event = $3
    if (value ~ /not supported/) { printf "  %-28s %18s\n", event, "<not supported>"; unsupported = 1; next }
    if (value ~ /not counted/) { printf "  %-28s %18s\n", event, "<not counted>"; next }
    if (event == "task-clock") { printf "  %-28s %15.1f ms", "task-clock (CPU time)", value; if (n > 0) printf "   %12.1f ns per message", value * 1e6 / n; printf "\n"; next }
    printf "  %-28s %18.0f", event, value
    if (n > 0) printf "   %12.3g per message", value / n
    printf "\n"
  }
  END {
    if (unsupported) print "  <not supported>: this machine exposes no such hardware counter (a VM without a virtual PMU, or a kernel without support); the software events above still count"
  }' "$tmp/stat"
if [ -n "$futex_note" ]; then echo "  $futex_note"; fi
