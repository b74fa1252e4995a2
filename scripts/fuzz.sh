#!/usr/bin/env bash
# Builds one libFuzzer target of fuzz/ (release, -sanitize=fuzzer,address: Swift's overflow
# and bounds traps stay on) and runs it for SECONDS on its seeds fuzz/corpus/<target>/ plus a
# scratch corpus $FUZZ_WORK/corpus/<target>/ that collects new inputs (so the committed seeds
# stay small); prints executions, exec/s and crashes. Crash inputs are written to
# $FUZZ_WORK/crashes/<target>/ (FUZZ_WORK defaults to /tmp/cfm-fuzz); copy one into
# fuzz/corpus/<target>/ to make it a regression test of `swift test` (decoder and config).
# Usage: scripts/fuzz.sh decoder|config|geometry SECONDS [extra libFuzzer flags…]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
target=${1:?usage: scripts/fuzz.sh decoder|config|geometry SECONDS}
seconds=${2:?usage: scripts/fuzz.sh decoder|config|geometry SECONDS}
shift 2
case $target in
    decoder)  product=FuzzFrameDecoder; max_len=4096 ;;
    config)   product=FuzzConfigParser; max_len=4096 ;;
    geometry) product=FuzzGeometry;     max_len=3074 ;;
    *) echo "unknown target '$target' (decoder, config, geometry)" >&2; exit 2 ;;
esac
work=${FUZZ_WORK:-/tmp/cfm-fuzz}
mkdir -p "$work/corpus/$target" "$work/crashes/$target"
flags=(-Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library)  # one -sanitize= (a second would replace the first)
swift build --package-path fuzz -c release --product "$product" "${flags[@]}" >&2
bin=$(swift build --package-path fuzz -c release "${flags[@]}" --show-bin-path)/$product
log="$work/$target.log"
status=0
# A small ASan quarantine: the machine is shared and the fuzzers run for long.
ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=32} "$bin" "$work/corpus/$target" "fuzz/corpus/$target" -max_total_time="$seconds" -max_len=$max_len \
    -artifact_prefix="$work/crashes/$target/" -print_final_stats=1 "$@" > "$log" 2>&1 || status=$?
executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
crashes=$(find "$work/crashes/$target" -type f | wc -l)
echo "$target: ${executions:-?} executions in ${seconds} s (${rate:-?} exec/s), exit $status, $crashes crash inputs in $work/crashes/$target (log $log)"
[ "$status" -eq 0 ]
