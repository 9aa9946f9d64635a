#!/usr/bin/env bash
# Records a benchmark (or any program) with `perf record -g` from the profile
# build and prints the top of `perf report`.
#
#   tools/perf_record.sh channel_bench --benchmark_filter='Throughput/spsc/procs/8/block'
#   tools/perf_record.sh peers_bench --only sleet --workload throughput --payload 64
#   tools/perf_record.sh /path/to/your_service --its-args
#
# Call graphs use frame pointers (the profile build keeps them). Forked
# children are recorded too. Where the CPU has no hardware counters (a VM
# without a virtual PMU) perf falls back to the cpu-clock software event.
# PERF_RECORD_LINES (default 40) lines of the report are printed; the data
# stays in build-profile/perf-NAME.data for `perf report -i`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/perf_common.sh"

perf_start perf_record "tools/perf_record.sh channel_bench|kv_bench|peers_bench|PROGRAM [ARGS...]" "$@"
mkdir -p "$profile_dir"
data="$profile_dir/perf-$(basename "$bin").data"

if ! perf stat -e cycles -x, -o /dev/stderr -- true 2>&1 >/dev/null | grep -q '^[0-9]'; then
  echo "perf_record: no hardware cycles counter here (<not supported>); sampling on cpu-clock instead" >&2
fi
perf record -g --call-graph fp -o "$data" -- "$bin" "${args[@]}"
lines=${PERF_RECORD_LINES:-40}
echo "== perf report: top $lines symbols by self time (call graphs: perf report -i $data)"
perf report -i "$data" --stdio --no-children -g none --percent-limit 0.5 2>/dev/null >"$data.txt" || true
grep -v -e '^#' -e '^$' "$data.txt" | cut -c1-180 | sed -n "1,${lines}p"
rm -f "$data.txt"
