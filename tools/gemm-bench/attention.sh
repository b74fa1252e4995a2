#!/usr/bin/env bash
# Builds and runs attention_bench: the fused attention head of the working tree's
# Sources/CVectorMath/vector_math.c against the one of git revision BASELINE (its own header
# too), one core (taskset), CPU time, alternating call by call in one process.
# Usage: tools/gemm-bench/attention.sh BASELINE [ROUNDS] [REPEATS] [SHAPE…]
#   e.g. tools/gemm-bench/attention.sh main 3 40          # both shapes, 3 rounds of min-of-40
# Environment: CC (default: the Swift toolchain's clang, which builds the package's C targets),
# ATTENTION_BENCH=PATH where the binary goes (default /tmp/attention_bench), CPU the core (default 1).
set -euo pipefail
cd "$(dirname "$0")/../.."
BASELINE=$1; shift
BIN=${ATTENTION_BENCH:-/tmp/attention_bench}
CC=${CC:-$(command -v /opt/swift/usr/bin/clang || echo cc)}
FLAGS=(-O3 -ffp-contract=off -fno-math-errno)  # as Package.swift builds CVectorMath
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/include"
git show "$BASELINE:Sources/CVectorMath/vector_math.c" > "$WORK/vector_math.c"
# The baseline's own headers (whichever it had: cvectormath_gelu.h is newer than the bench).
for header in $(git ls-tree --name-only "$BASELINE" Sources/CVectorMath/include/); do
    git show "$BASELINE:$header" > "$WORK/include/$(basename "$header")"
done
# The baseline's exported names get a `base_` prefix, so both versions link into one binary.
RENAMES=()
for name in softmax_rows gelu layer_norm normalized_distance sum axpy attention_scratch_count attention_head; do
    RENAMES+=(-Dcfm_$name=base_$name)
done
"$CC" "${FLAGS[@]}" -I"$WORK/include" "${RENAMES[@]}" -c "$WORK/vector_math.c" -o "$WORK/baseline.o"
"$CC" "${FLAGS[@]}" -ISources/CVectorMath/include -o "$BIN" tools/gemm-bench/attention_bench.c \
    Sources/CVectorMath/vector_math.c "$WORK/baseline.o" -lm
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); baseline $BASELINE ($(git rev-parse --short "$BASELINE")), core ${CPU:-1}"
taskset -c "${CPU:-1}" "$BIN" "$@"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
