// fp32 GEMM for linear layers on AVX-512, weights packed once at load (see cpackedgemm.h).
// Only the functions marked AVX512 use AVX-512; the file builds for any x86-64.
#include "cpackedgemm.h"
#include "cvectormath_gelu.h"

#include <immintrin.h>
#include <stdlib.h>

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define NR CFM_F32_PANEL
/// 16-lane vectors across a panel.
#define NV (NR / 16)

/// Rows of one micro-tile: 9 rows × 3 vectors = 27 zmm accumulators, plus the panel's three
/// weight vectors and one broadcast (31 of the 32 registers); each activation is broadcast from
/// its row of `a` as it is (no copy of the activations is made). Per input: 3 vector loads and
/// 9 broadcasts for 27 FMAs, 13.5 cycles at two FMAs a cycle, against a 4-cycle FMA latency.
/// Measured against 8 rows (24 accumulators: 2–5 % slower on the ViT's widest layers, qkv and
/// fc1, level elsewhere: each weight byte from L2 serves fewer FMAs), 14×32 and 12×32 tiles and
/// copying the activations into an interleaved block first (tools/gemm-bench/README.md).
#define MR 9
/// Rows per row block: the block's activations for one k block (MC × 512 or 768 × 4 = 792 KB or
/// 1.2 MB) stay in L2 (2 MB a core here) while every panel passes over them, and each panel's k
/// block of weights (96 or 144 KB, in L2) serves the block's 44 micro-tiles. 396 = 44 tiles of 9 holds
/// one core's half of the ViT's 785 tokens in one block, so each panel's weights are read once
/// per k block (256 rows, two blocks: 2–7 % slower on the ViT's qkv and fc1).
#define MC 396
/// Inputs per step of the micro-kernel's loop (see `microTile`).
#define K_UNROLL 4

int cfm_f32_block_depth(int k) { return k <= CFM_F32_KC_WHOLE ? k : CFM_F32_KC; }

size_t cfm_f32_packed_count(int n, int k) {
    return (size_t)(n + NR - 1) / NR * NR * (size_t)k;
}

void cfm_f32_pack_weights(int n, int k, const float *w, int ldw, float *packed) {
    size_t paddedN = (size_t)(n + NR - 1) / NR * NR;
    const int depth = cfm_f32_block_depth(k);
    for (int k0 = 0; k0 < k; k0 += depth) {
        int kc = k - k0 < depth ? k - k0 : depth;
        float *block = packed + (size_t)k0 * paddedN;
        for (size_t o = 0; o < paddedN; o++) {
            float *panel = block + o / NR * (size_t)kc * NR;
            for (int p = 0; p < kc; p++)
                panel[(size_t)p * NR + o % NR] = o < (size_t)n ? w[o * (size_t)ldw + k0 + p] : 0;
        }
    }
}

/// What a tile's sums are added to: nothing, c, the bias, or c + bias (in that order).
enum { BASE_NONE = 0, BASE_C = 1, BASE_BIAS = 2 };

/// One input's products for a tile: acc[i][·] += rows[i][u] · the panel's NR weights `bRow`.
AVX512 static inline __attribute__((always_inline)) void
accumulateInput(const int R, const float *const rows[MR], int u, const float *bRow, __m512 acc[MR][NV]) {
    __m512 bv[NV];
    for (int j = 0; j < NV; j++) bv[j] = _mm512_loadu_ps(bRow + 16 * j);
    for (int i = 0; i < R; i++) {
        __m512 ai = _mm512_set1_ps(rows[i][u]);
        for (int j = 0; j < NV; j++) acc[i][j] = _mm512_fmadd_ps(ai, bv[j], acc[i][j]);
    }
}

/// One micro-tile: c[R rows][NR columns, masked] from `a` (R rows, stride `lda`, kc inputs) and
/// `b` (kc inputs × NR outputs of one panel). Each sum starts at zero and takes its products in
/// increasing input order, then is added to its base (see `BASE_*`); with `gelu` (the last k
/// block of a GELU layer) the result is replaced by its GELU (`geluOf`, the arithmetic of
/// `cfm_gelu`) while it is still in a register; then it is stored. Meanwhile the `prefetchLines`
/// cache lines from `prefetch` on (a share of the next panel's weights) are fetched into L2, one
/// every K_UNROLL inputs (see `cfm_f32_gemm`).
AVX512 static inline __attribute__((always_inline)) void
microTile(const int R, int kc, const float *a, int lda, const float *b, float *c, int ldc, const __mmask16 mask[NV],
          const float *bias, int base, int gelu, const char *prefetch, int prefetchLines) {
    __m512 acc[MR][NV];
    for (int i = 0; i < R; i++)
        for (int j = 0; j < NV; j++) acc[i][j] = _mm512_setzero_ps();
    // The tile's outputs are read (or written) only after the products: fetch their lines now
    // (NV + 1 a row, covering a row that does not start on a line), so the misses on c's
    // scattered rows overlap the products instead of stalling the stores.
    for (int i = 0; i < R; i++)
        for (int j = 0; j <= NV; j++) _mm_prefetch((const char *)(c + (size_t)i * ldc + 16 * j), _MM_HINT_T0);
    // Inputs four at a time: each row's address is formed once per four inputs and its four
    // broadcasts are loads at fixed offsets from it, so the loop's per-row address arithmetic
    // (which shares the 4-wide front end with the 27 FMAs of an input) is a quarter of one per
    // input. The products still enter each sum in increasing input order.
    const float *rows[MR];
    int p = 0;
    for (; p + K_UNROLL <= kc; p += K_UNROLL) {
        if (prefetchLines > 0) {
            _mm_prefetch(prefetch, _MM_HINT_T1);
            prefetch += 64;
            prefetchLines--;
        }
        for (int i = 0; i < R; i++) rows[i] = a + (size_t)i * lda + p;
        for (int u = 0; u < K_UNROLL; u++) accumulateInput(R, rows, u, b + (size_t)(p + u) * NR, acc);
    }
    for (; p < kc; p++) {  // the last kc % K_UNROLL inputs, one at a time
        for (int i = 0; i < R; i++) rows[i] = a + (size_t)i * lda + p;
        accumulateInput(R, rows, 0, b + (size_t)p * NR, acc);
    }
    __m512 biasv[NV];
    for (int j = 0; j < NV; j++)
        biasv[j] = base & BASE_BIAS ? _mm512_maskz_loadu_ps(mask[j], bias + 16 * j) : _mm512_setzero_ps();
    for (int i = 0; i < R; i++) {
        float *row = c + (size_t)i * ldc;
        for (int j = 0; j < NV; j++) {
            __m512 v = acc[i][j];
            if (base != BASE_NONE) {
                __m512 sum = biasv[j];
                if (base & BASE_C) {
                    sum = _mm512_maskz_loadu_ps(mask[j], row + 16 * j);
                    if (base & BASE_BIAS) sum = _mm512_add_ps(sum, biasv[j]);
                }
                v = _mm512_add_ps(sum, v);
            }
            if (gelu) {
                float lanes[16];
                _mm512_storeu_ps(lanes, v);
                geluLanes(lanes);
                v = _mm512_loadu_ps(lanes);
            }
            _mm512_mask_storeu_ps(row + 16 * j, mask[j], v);
        }
    }
}

/// `microTile` with the row count as a constant, so a row block's last, shorter tile computes
/// only its rows (the same operations per row: its bits do not depend on the tile's height).
AVX512 static void tile(int rows, int kc, const float *a, int lda, const float *b, float *c, int ldc,
                        const __mmask16 mask[NV], const float *bias, int base, int gelu, const char *prefetch,
                        int prefetchLines) {
    switch (rows) {
#define ROWS(r) case r: microTile(r, kc, a, lda, b, c, ldc, mask, bias, base, gelu, prefetch, prefetchLines); break;
        ROWS(1) ROWS(2) ROWS(3) ROWS(4) ROWS(5) ROWS(6) ROWS(7) ROWS(8) ROWS(9)
#undef ROWS
    default: abort();
    }
}

AVX512 void cfm_f32_gemm(int m, int n, int k, const float *a, int lda, const float *packed, const float *bias,
                         float *c, int ldc, int epilogue) {
    size_t paddedN = (size_t)(n + NR - 1) / NR * NR;
    int panels = (int)(paddedN / NR);
    int accumulate = epilogue & CFM_F32_ACCUMULATE;
    if (k == 0) {  // no products: each output is its base (a case of the models' shapes never: plain C)
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j += 16) {
                int count = n - j < 16 ? n - j : 16;
                float *row = c + (size_t)i * ldc + j, lanes[16] = {0};
                for (int l = 0; l < count; l++) lanes[l] = (accumulate ? row[l] : 0) + (bias ? bias[j + l] : 0);
                if (epilogue & CFM_F32_GELU) geluLanes(lanes);
                for (int l = 0; l < count; l++) row[l] = lanes[l];
            }
        return;
    }
    const int depth = cfm_f32_block_depth(k);
    for (int k0 = 0; k0 < k; k0 += depth) {
        int kc = k - k0 < depth ? k - k0 : depth;
        int base = (k0 > 0 || accumulate ? BASE_C : BASE_NONE) | (k0 == 0 && bias ? BASE_BIAS : BASE_NONE);
        int gelu = k0 + kc == k && (epilogue & CFM_F32_GELU);
        const float *kBlock = packed + (size_t)k0 * paddedN;
        for (int m0 = 0; m0 < m; m0 += MC) {
            int mc = m - m0 < MC ? m - m0 : MC;
            for (int panel = 0; panel < panels; panel++) {
                int columns = n - panel * NR;
                __mmask16 mask[NV];
                for (int j = 0; j < NV; j++) {
                    int valid = columns - 16 * j;
                    mask[j] = valid >= 16 ? (__mmask16)0xFFFF : valid <= 0 ? (__mmask16)0 : (__mmask16)((1u << valid) - 1);
                }
                const float *b = kBlock + (size_t)panel * kc * NR;
                float *cPanel = c + (size_t)m0 * ldc + panel * NR;
                const float *panelBias = bias ? bias + panel * NR : NULL;
                // The next panel's k block of weights (from L3 or memory) is fetched into L2 while
                // this panel's tiles run, so its first tile does not wait for it: each tile takes
                // its share of the lines and fetches one every K_UNROLL inputs. (Fetched in a burst
                // before each tile, the prefetches stalled the core: each holds a fill buffer until
                // its line arrives, and 50–70 of them queue behind a few; 4–5 % slower.)
                const float *next = panel + 1 < panels ? b + (size_t)kc * NR : NULL;
                int lines = next ? kc * NR / 16 : 0, tiles = (mc + MR - 1) / MR, perTile = (lines + tiles - 1) / tiles;
                for (int i = 0; i < mc; i += MR) {
                    int first = i / MR * perTile, count = lines - first < perTile ? lines - first : perTile;
                    tile(mc - i < MR ? mc - i : MR, kc, a + (size_t)(m0 + i) * lda + k0, lda, b,
                         cPanel + (size_t)i * ldc, ldc, mask, panelBias, base, gelu,
                         next ? (const char *)(next + 16 * (size_t)first) : NULL, count > 0 ? count : 0);
                }
            }
        }
    }
}
