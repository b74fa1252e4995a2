#pragma once
// The engine's elementwise and row kernels outside the GEMMs (softmax rows, GELU, LayerNorm,
// the scorer's per-pixel reductions), each written once over 16-lane vectors and built twice:
// for AVX-512 (one zmm register a vector) and for baseline x86-64 (four xmm registers).
// `path` picks the build: CFM_VECTOR_AVX512 only on a CPU with AVX-512F/BW/DQ/VL (the caller
// checks), CFM_VECTOR_PORTABLE anywhere. Both builds do the same operations in the same order
// (no fused multiply-adds), so they return the same bits. All single-threaded.
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The build of the kernels to run.
#define CFM_VECTOR_PORTABLE 0
#define CFM_VECTOR_AVX512 1

/// Softmax over each of `rows` rows of `cols` values (row stride `ld`), in place: the row
/// maximum is subtracted first, then eˣ by
/// 2ⁿ · e^r (n = round(x / ln 2), r by Cody–Waite, a degree-6 Taylor polynomial; within 2 ulp,
/// exactly 0 below −87.3, never subnormal), then divided by their sum.
void cfm_softmax_rows(float *x, size_t rows, size_t cols, size_t ld, int path);

/// GELU, erf form, in place on `count` values: x · ½ · (1 + erf(x / √2)), erf by
/// Abramowitz & Stegun 7.1.26 (within 1.5e−7).
void cfm_gelu(float *x, size_t count, int path);

/// LayerNorm of `rows` rows of `dim` values: (x − mean) / √(biased variance + eps) · weight + bias.
/// `x` and `y` may be the same buffer.
void cfm_layer_norm(size_t rows, size_t dim, const float *x, const float *weight, const float *bias,
                    float eps, float *y, int path);

/// ‖a / max(‖a‖, 1e−12) − b / max(‖b‖, 1e−12)‖₂ of two `count`-vectors.
float cfm_normalized_distance(const float *a, const float *b, size_t count, int path);

/// Σ x of `count` values (16 partial sums, added pairwise at the end).
float cfm_sum(const float *x, size_t count, int path);

/// y += a · x on `count` values (a product, then a sum: no fused multiply-add).
void cfm_axpy(size_t count, float a, const float *x, float *y, int path);

#ifdef __cplusplus
}
#endif
