#pragma once
// cfm's fp32 GEMM for linear layers on AVX-512F: `c = a · Wᵀ (+ bias) (+ c)` with W packed once,
// at load, into the panel layout its register-tiled micro-kernel streams. Weights are never
// re-packed per call (a BLAS sgemm packs all of W on every call). A caller checks the CPU for
// AVX-512F (`CPUFeatures.avx512`) first and keeps a BLAS path for CPUs without it.
// The engine does not use it: per core it runs the model's shapes at 0.86–1.02× OpenBLAS's
// speed, not the ≥ 1.05× that would pay for a second fp32 path; it stays as tools/gemm-bench's
// `cfm-fp32` strategy (tools/gemm-bench/README.md has the numbers and how it was tested).
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Outputs (columns of c) of one packed weight panel: three 16-lane fp32 vectors.
#define CFM_F32_PANEL 48
/// Inputs per k block (see `cfm_f32_pack_weights`): each output's sum is written to c once per
/// block, so deep blocks save passes over c (the ViT's fc2 has 3072 inputs); a panel's block of
/// weights (512 × 48 × 4 = 96 KB) then streams from L2 into the micro-kernel (~16 bytes a cycle
/// at full FMA rate, within L2's bandwidth). Of 128, 256, 384, 512 and 768, the last three were
/// level and 256 and 128 behind (tools/gemm-bench/README.md).
#define CFM_F32_KC 512

/// Floats `cfm_f32_pack_weights` writes for an n×k weight: ⌈n/48⌉·48 × k.
size_t cfm_f32_packed_count(int n, int k);

/// Packs the weight `w` [n][k] (row stride `ldw`; PyTorch Linear layout [out, in]) into `packed`
/// (`cfm_f32_packed_count(n, k)` floats): for each block of `CFM_F32_KC` inputs, for each panel of
/// 48 outputs, for each input of the block, the panel's 48 weights (outputs past n are zero).
/// One block's panels are contiguous, so the micro-kernel reads one panel's block as one stream.
/// Plain C: runs on any CPU.
void cfm_f32_pack_weights(int n, int k, const float *w, int ldw, float *packed);

/// `c[m][n] = (accumulate ? c : 0) + bias + a[m][k] · Wᵀ` with `packed` from `cfm_f32_pack_weights`
/// (n outputs, k inputs), `a` row stride `lda`, `c` row stride `ldc`, `bias` [n] or NULL.
/// Each output is the sum of its products in increasing k within each `CFM_F32_KC` block (fused
/// multiply-adds from zero), the blocks added to it in order; with `bias` the first block is
/// added to (c + bias) or bias. That order does not depend on m or on which rows a call gets,
/// so splitting rows across threads gives the same bits. Single-threaded. Needs AVX-512F.
void cfm_f32_gemm(int m, int n, int k, const float *a, int lda, const float *packed, const float *bias,
                  float *c, int ldc, int accumulate);

#ifdef __cplusplus
}
#endif
