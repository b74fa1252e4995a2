#!/usr/bin/env bash
# Every GEMM strategy of tools/gemm-bench on the model's shapes, one process each (so no two
# thread pools overlap), per call and per stage, in one run; prints one table per mode
# (GFLOP/s, medians, wall time) and the load average before and after — only idle runs count.
# Usage: tools/gemm-bench/run.sh [REPEATS] [STRATEGY…]   (default 15 repeats, all strategies)
# Environment: GEMM_CORES=1 OMP_NUM_THREADS=1 for one core; CBF16_SOURCE=FILE builds cfm-bf16 from
# another version of Sources/CBF16/bf16_gemm.c (A/B: `git show REV:Sources/CBF16/bf16_gemm.c > FILE`),
# CPACKED_SOURCE=FILE likewise cfm-fp32 from another Sources/CPackedGEMM/packed_gemm.c, CC the C
# compiler (default: the Swift toolchain's clang, which builds the package's C targets),
# GEMM_BENCH=PATH where the binary goes (default /tmp/gemm_bench), MODES="calls stages" (the default)
# or either alone.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEATS=${1:-15}; shift || true
STRATEGIES=("$@")
[ ${#STRATEGIES[@]} -gt 0 ] || STRATEGIES=(rows cols obl-mt dnnl-sgemm dnnl-matmul cfm-fp32 cfm-bf16 dnnl-bf16)
BIN=${GEMM_BENCH:-/tmp/gemm_bench}
CC=${CC:-$(command -v /opt/swift/usr/bin/clang || echo cc)}
"$CC" -O3 -o "$BIN" tools/gemm-bench/gemm_bench.c "${CBF16_SOURCE:-Sources/CBF16/bf16_gemm.c}" \
    "${CPACKED_SOURCE:-Sources/CPackedGEMM/packed_gemm.c}" -ISources/CBF16/include -ISources/CPackedGEMM/include \
    -ISources/CVectorMath/include \
    -lopenblas -ldnnl -lpthread -lm
# Debian's OpenBLAS 0.3.21 does not know this CPU model and would run its SSE3 kernels (cfm
# selects by the CPU's features at run time; here the kernel set is named); oneDNN uses 2 threads.
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-COOPERLAKE} OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
OUT=$(mktemp -d)
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); OpenBLAS $OPENBLAS_CORETYPE, cores: ${GEMM_CORES:-2} (oneDNN threads: $OMP_NUM_THREADS), medians of $REPEATS"
for mode in ${MODES:-calls stages}; do
    for s in "${STRATEGIES[@]}"; do "$BIN" "$s" "$mode" "$REPEATS" > "$OUT/$mode-$s"; done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in ${MODES:-calls stages}; do
    echo
    echo "## $mode (GFLOP/s)"
    printf '| %-30s |' "$([ $mode = calls ] && echo 'shape M×N×K' || echo stage)"
    for s in "${STRATEGIES[@]}"; do printf ' %s |' "$s"; done
    echo
    printf '|---|'; for s in "${STRATEGIES[@]}"; do printf -- '---|'; done; echo
    # Each output line: strategy, shape or stage, ms, GFLOP/s (tab-separated): one column per strategy.
    paste $(for s in "${STRATEGIES[@]}"; do echo "$OUT/$mode-$s"; done) | awk -F'\t' '{
        sub(/ +$/, "", $2); printf "| %s |", $2
        for (i = 4; i <= NF; i += 4) { split($i, g, " +"); printf " %s |", g[1] == "" ? g[2] : g[1] }
        print ""
    }'
done
rm -rf "$OUT"
