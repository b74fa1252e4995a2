// bf16 GEMM on AVX512-BF16: fp32 activations are rounded to bf16 in cache-sized blocks,
// weights come pre-packed (once, at load), vdpbf16ps multiplies pairs of bf16 and accumulates
// in fp32. Only the functions marked BF16 use AVX-512; the file builds for any x86-64 and the
// caller checks `cfm_cpu_has_avx512_bf16` before calling them.
#include "cbf16.h"

#include <cpuid.h>
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

/// Rows of one micro-tile: 6 rows × 4 accumulators = 24 zmm, plus 4 weight vectors and a broadcast.
#define MR 6
/// Inputs per k block: the whole depth of the ViT's and the mappers' first layers, so their
/// outputs are written once instead of once per block. A panel's block of weights (KC/2 pairs ×
/// 256 bytes = 96 KB) then streams from L2 rather than staying in L1, which costs nothing here:
/// vdpbf16ps retires one every 2 cycles (tools/gemm-bench/peak.c), so the 24 of a pair step
/// take 48 cycles for 256 bytes of weights, ~5 bytes a cycle against L2's tens.
/// Against the former 256-deep blocks (kept in L1), one core on the model's shapes: 71–81 →
/// 75–82 GFLOP/s, of a vdpbf16ps peak of 86 (tools/gemm-bench/README.md).
#define KC 768
/// Rows per row block: the rounded activations of one block (MC × KC × 2 bytes = 72 KB) stay in L2.
#define MC 48

int cfm_cpu_has_avx512_bf16(void) {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid_count(1, 0, &eax, &ebx, &ecx, &edx) || !(ecx & bit_OSXSAVE)) return 0;
    // XCR0: SSE, AVX, opmask, upper halves of zmm0–15 and zmm16–31 enabled by the OS.
    unsigned xcr0Low, xcr0High;
    __asm__("xgetbv" : "=a"(xcr0Low), "=d"(xcr0High) : "c"(0));
    if ((xcr0Low & 0xE6) != 0xE6) return 0;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) || !(ebx & bit_AVX512F) || !(ebx & bit_AVX512BW)) return 0;
    if (!__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) return 0;
    return (eax >> 5) & 1;  // CPUID.(EAX=7, ECX=1):EAX[5] = AVX512_BF16
}

size_t cfm_bf16_packed_count(int n, int k) {
    size_t panels = (size_t)(n + CFM_BF16_PANEL - 1) / CFM_BF16_PANEL, pairs = (size_t)(k + 1) / 2;
    return panels * pairs * CFM_BF16_PANEL * 2;
}

/// 16 floats (the first `valid`, the rest zero) → 16 bf16.
BF16 static inline __m256i round16(const float *x, int valid) {
    __mmask16 mask = valid >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1);
    return (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, x));
}

BF16 void cfm_bf16_round(const float *x, uint16_t *out, size_t count) {
    for (size_t i = 0; i < count; i += 16) {
        int valid = count - i >= 16 ? 16 : (int)(count - i);
        __mmask16 mask = valid >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1);
        _mm256_mask_storeu_epi16(out + i, mask, round16(x + i, valid));
    }
}

BF16 void cfm_bf16_pack_weights(int n, int k, const float *w, int ldw, uint16_t *packed) {
    size_t pairs = (size_t)(k + 1) / 2;
    uint16_t row[2 * pairs + 16];
    memset(packed, 0, cfm_bf16_packed_count(n, k) * sizeof(uint16_t));
    for (int o = 0; o < n; o++) {
        cfm_bf16_round(w + (size_t)o * ldw, row, (size_t)k);
        if (k & 1) row[k] = 0;
        uint16_t *panel = packed + (size_t)(o / CFM_BF16_PANEL) * pairs * CFM_BF16_PANEL * 2;
        int column = o % CFM_BF16_PANEL;
        for (size_t p = 0; p < pairs; p++) {
            panel[(p * CFM_BF16_PANEL + column) * 2] = row[2 * p];
            panel[(p * CFM_BF16_PANEL + column) * 2 + 1] = row[2 * p + 1];
        }
    }
}

/// c[rows][64 masked] (+)= a[MR rows][2·pairs] · b, with `a` rounded activations (row stride
/// `lda` uint16, rows beyond `rows` zero) and `b` one panel's pairs.
BF16 static inline void microTile(int pairs, const uint16_t *a, int lda, const uint16_t *b, float *c, int ldc,
                                  int rows, const __mmask16 mask[4], int accumulate) {
    __m512 acc[MR][4];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
    for (int p = 0; p < pairs; p++) {
        const uint16_t *bp = b + (size_t)p * CFM_BF16_PANEL * 2;
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp), b1 = (__m512bh)_mm512_loadu_si512(bp + 32);
        __m512bh b2 = (__m512bh)_mm512_loadu_si512(bp + 64), b3 = (__m512bh)_mm512_loadu_si512(bp + 96);
        for (int i = 0; i < MR; i++) {
            int32_t pair;
            memcpy(&pair, a + (size_t)i * lda + 2 * p, sizeof pair);
            __m512bh ai = (__m512bh)_mm512_set1_epi32(pair);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
            acc[i][2] = _mm512_dpbf16_ps(acc[i][2], ai, b2);
            acc[i][3] = _mm512_dpbf16_ps(acc[i][3], ai, b3);
        }
    }
    for (int i = 0; i < MR; i++) {
        if (i >= rows) break;
        float *row = c + (size_t)i * ldc;
        for (int j = 0; j < 4; j++) {
            __m512 v = acc[i][j];
            if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask[j], row + 16 * j));
            _mm512_mask_storeu_ps(row + 16 * j, mask[j], v);
        }
    }
}

BF16 void cfm_bf16_gemm(int m, int n, int k, const float *a, int lda, const uint16_t *packed,
                        float *c, int ldc, int accumulate) {
    size_t pairs = (size_t)(k + 1) / 2;
    int panels = (n + CFM_BF16_PANEL - 1) / CFM_BF16_PANEL;
    // Rounded activations of one (row block, k block), rows padded to a multiple of MR with zeros
    // (on the heap: 83 KB is more than some threads' stacks should carry).
    uint16_t *block = aligned_alloc(64, (size_t)(MC + MR) * KC * sizeof(uint16_t));
    if (!block) abort();
    for (int k0 = 0; k0 < k; k0 += KC) {
        int kc = k - k0 < KC ? k - k0 : KC, kcPairs = (kc + 1) / 2;
        for (int m0 = 0; m0 < m; m0 += MC) {
            int mc = m - m0 < MC ? m - m0 : MC, paddedRows = (mc + MR - 1) / MR * MR;
            for (int r = 0; r < paddedRows; r++) {
                uint16_t *dst = block + (size_t)r * KC;
                if (r < mc) {
                    cfm_bf16_round(a + (size_t)(m0 + r) * lda + k0, dst, (size_t)kc);
                    if (kc & 1) dst[kc] = 0;
                } else {
                    memset(dst, 0, (size_t)kcPairs * 2 * sizeof(uint16_t));
                }
            }
            for (int panel = 0; panel < panels; panel++) {
                int columns = n - panel * CFM_BF16_PANEL;
                __mmask16 mask[4];
                for (int j = 0; j < 4; j++) {
                    int valid = columns - 16 * j;
                    mask[j] = valid >= 16 ? (__mmask16)0xFFFF : valid <= 0 ? (__mmask16)0 : (__mmask16)((1u << valid) - 1);
                }
                const uint16_t *b = packed + ((size_t)panel * pairs + (size_t)k0 / 2) * CFM_BF16_PANEL * 2;
                float *cPanel = c + (size_t)m0 * ldc + panel * CFM_BF16_PANEL;
                for (int i = 0; i < mc; i += MR) {
                    microTile(kcPairs, block + (size_t)i * KC, KC, b, cPanel + (size_t)i * ldc, ldc,
                              mc - i < MR ? mc - i : MR, mask, accumulate || k0 > 0);
                }
            }
        }
    }
    free(block);
}
