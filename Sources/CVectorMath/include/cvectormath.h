#pragma once
// The engine's elementwise and row kernels outside the GEMMs (softmax rows, GELU, LayerNorm,
// the scorer's per-pixel reductions), each written once over 16-lane vectors and built twice:
// for AVX-512 (one zmm register a vector) and for baseline x86-64 (four xmm registers).
// `path` picks the build: CFM_VECTOR_AVX512 only on a CPU with AVX-512F/BW/DQ/VL (the caller
// checks), CFM_VECTOR_PORTABLE anywhere. Both builds do the same operations in the same order
// (no fused multiply-adds), so they return the same bits. The exception is the fused attention
// head, AVX-512 only (callers use GEMMs elsewhere). All single-threaded.
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

/// Head width of `cfm_attention_head`.
#define CFM_ATTENTION_HEAD_DIM 64
/// Floats of scratch `cfm_attention_head` needs for `tokens` tokens: the keys transposed, the
/// values packed, one query block's scores, queries and outputs, and a cache line to align them.
size_t cfm_attention_scratch_count(size_t tokens);

/// One attention head, `out = softmax(q·kᵀ · scale) · v`, for `tokens` queries and keys of
/// CFM_ATTENTION_HEAD_DIM values: q, k, v [tokens, 64] with row strides `ldq`/`ldk`/`ldv`, out
/// [tokens, 64] with row stride `ldo`. The keys are transposed in tiles of 32 and the values
/// packed, once; queries go in blocks of 96 rows, each block's queries copied densely and times
/// `scale`: scores by 12×32 register tiles (fused multiply-adds; each row's maximum kept as
/// the tiles are stored), e^(score − row max) by the exponential of `cfm_softmax_rows` with
/// fused multiply-adds, then scores · v by 6×64 tiles over 128-key slices of the packed values
/// (which stay in L1), scaled by 1 / the row's sum at the end (the probabilities themselves
/// are never written). Each output depends only on its own head's q, k, v: any split of the
/// heads across cores gives the same bits.
/// Needs AVX-512 (CFM_VECTOR_AVX512 only); single-threaded; `scratch` holds
/// `cfm_attention_scratch_count(tokens)` floats.
void cfm_attention_head(size_t tokens, float scale, const float *q, size_t ldq, const float *k, size_t ldk,
                        const float *v, size_t ldv, float *out, size_t ldo, float *scratch);

#ifdef __cplusplus
}
#endif
