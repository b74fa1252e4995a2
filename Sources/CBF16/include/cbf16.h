#pragma once
// bf16 GEMM with fp32 accumulation on AVX512-BF16 (vdpbf16ps), for the GEMM-heavy layers
// of the opt-in bf16 precision. Everything else in the engine stays fp32.
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when this CPU and the OS support AVX-512F and AVX512-BF16 (cpuid leaf 7 and XCR0), else 0.
int cfm_cpu_has_avx512_bf16(void);

/// Columns of one packed weight panel (four 16-lane fp32 accumulators).
#define CFM_BF16_PANEL 64

/// uint16 elements `cfm_bf16_pack_weights` writes for an n×k weight (n outputs, k inputs):
/// ⌈n/64⌉ panels of ⌈k/2⌉ pairs × 64 columns × 2.
size_t cfm_bf16_packed_count(int n, int k);

/// Rounds `count` floats to bf16 (round to nearest even; NaN stays NaN; subnormals become
/// signed zero, as the AVX512-BF16 conversion does). Needs AVX512-BF16.
void cfm_bf16_round(const float *x, uint16_t *out, size_t count);

/// Packs the weight `w` [n][k] (row stride `ldw`; PyTorch Linear layout [out, in]) as bf16 into
/// `packed` (`cfm_bf16_packed_count(n, k)` elements): for each panel of 64 outputs, for each
/// pair of inputs (2p, 2p+1), the 64 outputs' two values. Missing rows/columns are zero.
/// Needs AVX512-BF16.
void cfm_bf16_pack_weights(int n, int k, const float *w, int ldw, uint16_t *packed);

/// `c[m][n] (+)= bf16(a)[m][k] · packedᵀ`: a [m][k] fp32 (row stride `lda`) is rounded to bf16
/// block by block, products are accumulated in fp32, c (row stride `ldc`) is fp32. With
/// `accumulate` the product is added to what c holds, else it replaces it. Single-threaded;
/// the summation order is fixed, so results are the same run to run. Needs AVX512-BF16.
void cfm_bf16_gemm(int m, int n, int k, const float *a, int lda, const uint16_t *packed,
                   float *c, int ldc, int accumulate);

#ifdef __cplusplus
}
#endif
