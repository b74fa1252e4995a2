#!/usr/bin/env bash
# Builds and runs packed_ab: the packed fp32 kernel of the working tree's
# Sources/CPackedGEMM/packed_gemm.c against the one of git revision BASELINE (its own header
# too), on the ViT's projections, alternating call by call in one process.
# Usage: tools/gemm-bench/packed.sh BASELINE [ROUNDS] [REPEATS]
#   e.g. tools/gemm-bench/packed.sh main 15 3                   # one core, CPU time
#        THREADS=2 FLUSH_MB=400 tools/gemm-bench/packed.sh main  # both cores, weights from memory
# Environment: THREADS (1 or 2), FLUSH_MB (see packed_ab.c), CC (default: the Swift toolchain's
# clang, which builds the package's C targets), PACKED_AB=PATH where the binary goes
# (default /tmp/packed_ab). Only ratios within one run count (tools/gemm-bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
BASELINE=$1; shift
BIN=${PACKED_AB:-/tmp/packed_ab}
CC=${CC:-$(command -v /opt/swift/usr/bin/clang || echo cc)}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/include"
git show "$BASELINE:Sources/CPackedGEMM/packed_gemm.c" > "$WORK/packed_gemm.c"
git show "$BASELINE:Sources/CPackedGEMM/include/cpackedgemm.h" > "$WORK/include/cpackedgemm.h"
# The baseline's exported names get a `base_` prefix, so both versions link into one binary.
RENAMES=()
for name in packed_count pack_weights gemm block_depth; do RENAMES+=(-Dcfm_f32_$name=base_f32_$name); done
"$CC" -O3 -I"$WORK/include" -ISources/CVectorMath/include "${RENAMES[@]}" -c "$WORK/packed_gemm.c" -o "$WORK/baseline.o"
"$CC" -O3 -ISources/CPackedGEMM/include -ISources/CVectorMath/include -o "$BIN" tools/gemm-bench/packed_ab.c \
    Sources/CPackedGEMM/packed_gemm.c "$WORK/baseline.o" -lpthread -lm
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); baseline $BASELINE ($(git rev-parse --short "$BASELINE"))"
"$BIN" "$@"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
