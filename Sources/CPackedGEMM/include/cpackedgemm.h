#pragma once
// cfm's fp32 GEMM for linear layers on AVX-512: `c = GELU?(a · Wᵀ (+ bias) (+ c))` with W packed
// once, at load, into the panel layout its register-tiled micro-kernel streams. Weights are never
// re-packed per call (a BLAS sgemm packs all of W on every call, on every core), and the bias, the
// residual sum and fc1's GELU are applied to each tile in registers (no pass of their own over
// the outputs). A caller checks the CPU for AVX-512 F/BW/DQ/VL (`CPUFeatures.avx512`) first and
// keeps a BLAS path for CPUs without it. The engine runs both extractors' transformer blocks and
// the mappers on it (`PackedMatrix`, `packedLinear`); tools/gemm-bench times it as strategy
// `cfm-fp32`, and `packed.sh` against another revision of this file.
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Outputs (columns of c) of one packed weight panel: three 16-lane fp32 vectors.
#define CFM_F32_PANEL 48
/// Inputs per k block of a layer with more than `CFM_F32_KC_WHOLE` inputs (see
/// `cfm_f32_pack_weights`): each output's sum is written to c once per block, so deep blocks save
/// passes over c (the ViT's fc2 has 3072 inputs); a panel's block of weights (512 × 48 × 4 =
/// 96 KB) then streams from L2 into the micro-kernel (~16 bytes a cycle at full FMA rate, within
/// L2's bandwidth). Of 128, 256, 384, 512 and 768, the last three were level and 256 and 128
/// behind (tools/gemm-bench/README.md).
#define CFM_F32_KC 512
/// Layers with at most this many inputs are one k block (a panel of 1024 × 48 × 4 = 192 KB still
/// sits in L2): the ViT's 768-input layers then write each output once instead of adding a
/// 256-deep second block to it (~1 % faster on qkv, proj and fc1).
#define CFM_F32_KC_WHOLE 1024

/// Inputs per k block of a layer with `k` inputs: k itself up to `CFM_F32_KC_WHOLE`, else
/// `CFM_F32_KC` (the last block takes the rest). Packing, the products and a reader of packed
/// weights all follow it.
int cfm_f32_block_depth(int k);

/// Floats `cfm_f32_pack_weights` writes for an n×k weight: ⌈n/48⌉·48 × k.
size_t cfm_f32_packed_count(int n, int k);

/// Packs the weight `w` [n][k] (row stride `ldw`; PyTorch Linear layout [out, in]) into `packed`
/// (`cfm_f32_packed_count(n, k)` floats): for each k block (`cfm_f32_block_depth`), for each panel
/// of 48 outputs, for each input of the block, the panel's 48 weights (outputs past n are zero).
/// One block's panels are contiguous, so the micro-kernel reads one panel's block as one stream.
/// Plain C: runs on any CPU.
void cfm_f32_pack_weights(int n, int k, const float *w, int ldw, float *packed);

/// `cfm_f32_gemm`'s `epilogue` flags: add the products to what c holds (a residual connection)…
#define CFM_F32_ACCUMULATE 1
/// …and replace each output by its GELU (erf form, the arithmetic of `cfm_gelu`: the same bits
/// as running `cfm_gelu` over the outputs afterwards).
#define CFM_F32_GELU 2

/// `c[m][n] = (accumulate ? c : 0) + bias + a[m][k] · Wᵀ`, then GELU with `CFM_F32_GELU`, with
/// `packed` from `cfm_f32_pack_weights` (n outputs, k inputs), `a` row stride `lda`, `c` row
/// stride `ldc`, `bias` [n] or NULL, `epilogue` a combination of the `CFM_F32_*` flags.
/// Each output is the sum of its products in increasing k within each k block (fused
/// multiply-adds from zero), the blocks added to it in order; with `bias` the first block is
/// added to (c + bias) or bias; the GELU is applied to the last block's result before it is
/// stored. That order does not depend on m or on which rows a call gets, so splitting rows
/// across threads gives the same bits. Single-threaded. Needs AVX-512 F/BW/DQ/VL.
void cfm_f32_gemm(int m, int n, int k, const float *a, int lda, const float *packed, const float *bias,
                  float *c, int ldc, int epilogue);

#ifdef __cplusplus
}
#endif
