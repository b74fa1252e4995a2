// Each kernel is one always-inlined body over 16-lane vectors (clang's ext_vector_type), wrapped
// twice: once under an AVX-512 target attribute (a vector is one zmm register) and once for the
// file's baseline x86-64 target (four xmm registers). The exported function runs the wrapper
// its `path` names. Built with -ffp-contract=off: no fused multiply-adds, so both builds round
// every operation the same way and return the same bits.
#include "cvectormath.h"
#include "cvectormath_gelu.h"

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define LANES 16

// The helpers pass 16-lane vectors by value; they are always inlined, so the ABI of such
// arguments without AVX-512 (which clang warns about) never applies.
#pragma clang diagnostic ignored "-Wpsabi"
#define INLINE static inline __attribute__((always_inline))
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))

// MARK: - Vector helpers (splat, blend, vexp, verf and geluOf are in cvectormath_gelu.h)

INLINE vf load(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
INLINE void store(float *p, vf v) { memcpy(p, &v, sizeof v); }
/// The `n` < 16 values at `p` in the first lanes, `fill` in the others.
INLINE vf loadTail(const float *p, size_t n, float fill) {
    float lanes[LANES];
    for (int i = 0; i < LANES; i++) lanes[i] = fill;
    memcpy(lanes, p, n * sizeof(float));
    return load(lanes);
}
/// Stores the first `n` < 16 lanes of `v` at `p`.
INLINE void storeTail(float *p, vf v, size_t n) {
    float lanes[LANES];
    store(lanes, v);
    memcpy(p, lanes, n * sizeof(float));
}
INLINE vf vmax(vf a, vf b) { return blend(a > b, a, b); }
/// Sum of the lanes, added pairwise (lane i + lane i+8, then +4, +2, +1): a fixed order.
INLINE float hsum(vf v) {
    float lanes[LANES];
    store(lanes, v);
    for (int width = LANES / 2; width >= 1; width /= 2)
        for (int i = 0; i < width; i++) lanes[i] += lanes[i + width];
    return lanes[0];
}
INLINE float hmax(vf v) {
    float lanes[LANES];
    store(lanes, v);
    float m = lanes[0];
    for (int i = 1; i < LANES; i++) m = lanes[i] > m ? lanes[i] : m;
    return m;
}

// MARK: - Kernel bodies

INLINE void softmaxRows(float *x, size_t rows, size_t cols, size_t ld) {
    size_t full = cols - cols % LANES, tail = cols % LANES;
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * ld;
        vf m = splat(-INFINITY);
        for (size_t j = 0; j < full; j += LANES) m = vmax(m, load(row + j));
        if (tail) m = vmax(m, loadTail(row + full, tail, -INFINITY));
        float rowMax = hmax(m);
        vf sum = splat(0);
        for (size_t j = 0; j < full; j += LANES) {
            vf e = vexp(load(row + j) - rowMax);
            store(row + j, e);
            sum += e;
        }
        if (tail) {
            vf e = vexp(loadTail(row + full, tail, -INFINITY) - rowMax);  // padding lanes: e^−∞ = 0
            storeTail(row + full, e, tail);
            sum += e;
        }
        float inverse = 1.0f / hsum(sum);
        for (size_t j = 0; j < full; j += LANES) store(row + j, load(row + j) * inverse);
        if (tail) storeTail(row + full, loadTail(row + full, tail, 0) * inverse, tail);
    }
}

INLINE void gelu(float *x, size_t count) {
    size_t full = count - count % LANES;
    for (size_t i = 0; i < full; i += LANES) store(x + i, geluOf(load(x + i)));
    if (count > full) storeTail(x + full, geluOf(loadTail(x + full, count - full, 0)), count - full);
}

INLINE void layerNorm(size_t rows, size_t dim, const float *x, const float *weight, const float *bias,
                      float eps, float *y) {
    size_t full = dim - dim % LANES, tail = dim % LANES;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        float *yr = y + r * dim;
        vf sum = splat(0);
        for (size_t j = 0; j < full; j += LANES) sum += load(xr + j);
        if (tail) sum += loadTail(xr + full, tail, 0);
        float mean = hsum(sum) / (float)dim;
        vf squares = splat(0);
        for (size_t j = 0; j < full; j += LANES) {
            vf d = load(xr + j) - mean;
            squares += d * d;
        }
        if (tail) {
            vf d = loadTail(xr + full, tail, mean) - mean;  // padding lanes: 0
            squares += d * d;
        }
        float inverse = 1.0f / sqrtf(hsum(squares) / (float)dim + eps);
        for (size_t j = 0; j < full; j += LANES)
            store(yr + j, (load(xr + j) - mean) * inverse * load(weight + j) + load(bias + j));
        if (tail)
            storeTail(yr + full, (loadTail(xr + full, tail, 0) - mean) * inverse * loadTail(weight + full, tail, 0)
                      + loadTail(bias + full, tail, 0), tail);
    }
}

INLINE float normalizedDistance(const float *a, const float *b, size_t count) {
    size_t full = count - count % LANES, tail = count % LANES;
    vf aa = splat(0), bb = splat(0);
    for (size_t j = 0; j < full; j += LANES) {
        vf va = load(a + j), vb = load(b + j);
        aa += va * va;
        bb += vb * vb;
    }
    if (tail) {
        vf va = loadTail(a + full, tail, 0), vb = loadTail(b + full, tail, 0);
        aa += va * va;
        bb += vb * vb;
    }
    float normA = sqrtf(hsum(aa)), normB = sqrtf(hsum(bb));
    float ia = 1.0f / (normA > 1e-12f ? normA : 1e-12f), ib = 1.0f / (normB > 1e-12f ? normB : 1e-12f);
    vf d = splat(0);
    for (size_t j = 0; j < full; j += LANES) {
        vf e = load(a + j) * ia - load(b + j) * ib;
        d += e * e;
    }
    if (tail) {
        vf e = loadTail(a + full, tail, 0) * ia - loadTail(b + full, tail, 0) * ib;
        d += e * e;
    }
    return sqrtf(hsum(d));
}

INLINE float sum(const float *x, size_t count) {
    size_t full = count - count % LANES;
    vf s = splat(0);
    for (size_t i = 0; i < full; i += LANES) s += load(x + i);
    if (count > full) s += loadTail(x + full, count - full, 0);
    return hsum(s);
}

INLINE void axpy(size_t count, float a, const float *x, float *y) {
    size_t full = count - count % LANES;
    for (size_t i = 0; i < full; i += LANES) store(y + i, load(y + i) + a * load(x + i));
    if (count > full) storeTail(y + full, loadTail(y + full, count - full, 0) + a * loadTail(x + full, count - full, 0),
                                count - full);
}

// MARK: - The two builds and the dispatch

/// `name_avx512` and `name_portable`: `body` (a statement) under each target.
#define BUILDS(type, name, parameters, body) \
    AVX512 static type name##_avx512 parameters { body; } \
    static type name##_portable parameters { body; }

BUILDS(void, softmaxRows, (float *x, size_t rows, size_t cols, size_t ld), softmaxRows(x, rows, cols, ld))
BUILDS(void, gelu, (float *x, size_t count), gelu(x, count))
BUILDS(void, layerNorm,
       (size_t rows, size_t dim, const float *x, const float *weight, const float *bias, float eps, float *y),
       layerNorm(rows, dim, x, weight, bias, eps, y))
BUILDS(float, normalizedDistance, (const float *a, const float *b, size_t count), return normalizedDistance(a, b, count))
BUILDS(float, sum, (const float *x, size_t count), return sum(x, count))
BUILDS(void, axpy, (size_t count, float a, const float *x, float *y), axpy(count, a, x, y))

void cfm_softmax_rows(float *x, size_t rows, size_t cols, size_t ld, int path) {
    if (path == CFM_VECTOR_AVX512) softmaxRows_avx512(x, rows, cols, ld);
    else softmaxRows_portable(x, rows, cols, ld);
}

void cfm_gelu(float *x, size_t count, int path) {
    if (path == CFM_VECTOR_AVX512) gelu_avx512(x, count);
    else gelu_portable(x, count);
}

void cfm_layer_norm(size_t rows, size_t dim, const float *x, const float *weight, const float *bias,
                    float eps, float *y, int path) {
    if (path == CFM_VECTOR_AVX512) layerNorm_avx512(rows, dim, x, weight, bias, eps, y);
    else layerNorm_portable(rows, dim, x, weight, bias, eps, y);
}

float cfm_normalized_distance(const float *a, const float *b, size_t count, int path) {
    return path == CFM_VECTOR_AVX512 ? normalizedDistance_avx512(a, b, count) : normalizedDistance_portable(a, b, count);
}

float cfm_sum(const float *x, size_t count, int path) {
    return path == CFM_VECTOR_AVX512 ? sum_avx512(x, count) : sum_portable(x, count);
}

void cfm_axpy(size_t count, float a, const float *x, float *y, int path) {
    if (path == CFM_VECTOR_AVX512) axpy_avx512(count, a, x, y);
    else axpy_portable(count, a, x, y);
}

// MARK: - Attention (AVX-512 only)

/// Keys per scores tile (two zmm registers); the transposed keys are padded to a multiple.
#define KEY_TILE 32
/// Query rows per scores tile (12 × 2 of the 32 zmm registers accumulate); block rows are
/// padded to a multiple.
#define QUERY_TILE 12
/// Query rows per scores · v tile (6 rows × 4 accumulators of 16 of the 64 outputs: 24 registers).
#define OUTPUT_TILE 6
/// Keys per slice of scores · v: 128 rows of v (32 KB) stay in L1 while every row tile uses them.
#define VALUE_SLICE 128
/// Query rows per block: one block's scores are in the scratch at a time (300 KB at 785
/// tokens, in L2). 96 measured level with 48 and 192 and 2–3 % ahead of 252.
#define BLOCK 96
#define HEAD CFM_ATTENTION_HEAD_DIM
_Static_assert(BLOCK % QUERY_TILE == 0 && QUERY_TILE % OUTPUT_TILE == 0, "a block is whole tiles");

/// Bytes the scratch's start is rounded up to: one cache line, so no 64-byte load of the packed
/// keys, values or scores straddles two lines (its every part is a multiple of 64 bytes long).
#define SCRATCH_ALIGNMENT 64

static size_t roundUp(size_t n, size_t multiple) { return (n + multiple - 1) / multiple * multiple; }

size_t cfm_attention_scratch_count(size_t tokens) {
    size_t keys = roundUp(tokens, KEY_TILE);
    return HEAD * keys + tokens * HEAD + BLOCK * keys + 2 * BLOCK * HEAD + SCRATCH_ALIGNMENT / sizeof(float);
}

/// scores [QUERY_TILE, KEY_TILE] (row stride `keys`) = q · kᵀ for one tile of the packed keys
/// ([HEAD, KEY_TILE], 8 KB: it stays in L1 while every query tile of a block uses it) and
/// QUERY_TILE consecutive rows of the block's packed queries ([QUERY_TILE, HEAD], already scaled);
/// each row's running maximum (16 lanes at `rowMaxes` + 16·row) takes in its scores of the keys
/// that exist (lanes `valid0` of the first 16, `valid1` of the second; the padding keys score 0).
AVX512 static void scoreTile(const float *q, const float *tile, size_t keys, float *scores, float *rowMaxes,
                             __mmask16 valid0, __mmask16 valid1) {
    __m512 acc[QUERY_TILE][2];
    for (int r = 0; r < QUERY_TILE; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int d = 0; d < HEAD; d++) {
        __m512 k0 = _mm512_loadu_ps(tile + d * KEY_TILE), k1 = _mm512_loadu_ps(tile + d * KEY_TILE + 16);
        for (int r = 0; r < QUERY_TILE; r++) {
            __m512 qd = _mm512_set1_ps(q[r * HEAD + d]);
            acc[r][0] = _mm512_fmadd_ps(qd, k0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(qd, k1, acc[r][1]);
        }
    }
    for (int r = 0; r < QUERY_TILE; r++) {
        _mm512_storeu_ps(scores + r * keys, acc[r][0]);
        _mm512_storeu_ps(scores + r * keys + 16, acc[r][1]);
        __m512 m = _mm512_loadu_ps(rowMaxes + 16 * r);
        m = _mm512_mask_max_ps(m, valid0, m, acc[r][0]);
        m = _mm512_mask_max_ps(m, valid1, m, acc[r][1]);
        _mm512_storeu_ps(rowMaxes + 16 * r, m);
    }
}

/// eˣ as `vexp` computes it, with fused multiply-adds (one rounding a step instead of two) and
/// the scaling by 2ⁿ as one `vscalefps` (exact, as `vexp`'s multiply by 2ⁿ's bits is): for
/// the attention kernel only, which is AVX-512 only and has no portable twin to agree with.
AVX512 static __m512 vexpFused(__m512 x) {
    __mmask16 kept = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_NLT_UQ);
    __m512 shifted = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(12582912.0f));
    __m512 n = _mm512_sub_ps(shifted, _mm512_set1_ps(12582912.0f));
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(kept, p, n);
}

/// The row softmax without its last pass: each of `rows` rows (stride `ld`) of `cols` scores
/// becomes e^(score − row max) (`vexpFused`; the maximum of the 16 lanes at `rowMaxes` + 16·row,
/// which `scoreTile` kept), and `inverse[r]` = 1 / the row's sum; `valueTile` scales its
/// products by it, so the probabilities are never written.
AVX512 static void exponentiateRows(float *x, size_t rows, size_t cols, size_t ld, const float *rowMaxes, float *inverse) {
    size_t full = cols - cols % 16;
    __mmask16 tail = (__mmask16)((1u << (cols % 16)) - 1);
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * ld;
        __m512 rowMax = _mm512_set1_ps(_mm512_reduce_max_ps(_mm512_loadu_ps(rowMaxes + 16 * r))), sum = _mm512_setzero_ps();
        for (size_t j = 0; j < full; j += 16) {
            __m512 e = vexpFused(_mm512_sub_ps(_mm512_loadu_ps(row + j), rowMax));
            _mm512_storeu_ps(row + j, e);
            sum = _mm512_add_ps(sum, e);
        }
        if (tail) {
            __m512 e = _mm512_maskz_mov_ps(tail, vexpFused(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, row + full), rowMax)));
            _mm512_mask_storeu_ps(row + full, tail, e);
            sum = _mm512_add_ps(sum, e);
        }
        inverse[r] = 1.0f / _mm512_reduce_add_ps(sum);
    }
}

/// result rows = (o rows when accumulating, else 0) + p [OUTPUT_TILE, first..<end] (row stride
/// `keys`) · v rows first..<end: row r of the tile is read from `o[r]` and written to `result[r]`
/// (each [HEAD]), times `inverse[r]` when `inverse` is given (the last slice).
AVX512 static void valueTile(const float *p, size_t keys, const float *v, size_t ldv, size_t first, size_t end,
                             float *const o[OUTPUT_TILE], float *const result[OUTPUT_TILE], int accumulate,
                             const float *inverse) {
    __m512 acc[OUTPUT_TILE][HEAD / 16];
    for (int r = 0; r < OUTPUT_TILE; r++)
        for (int c = 0; c < HEAD / 16; c++)
            acc[r][c] = accumulate ? _mm512_loadu_ps(o[r] + 16 * c) : _mm512_setzero_ps();
    for (size_t j = first; j < end; j++) {
        __m512 vj[HEAD / 16];
        for (int c = 0; c < HEAD / 16; c++) vj[c] = _mm512_loadu_ps(v + j * ldv + 16 * c);
        for (int r = 0; r < OUTPUT_TILE; r++) {
            __m512 pj = _mm512_set1_ps(p[r * keys + j]);
            for (int c = 0; c < HEAD / 16; c++) acc[r][c] = _mm512_fmadd_ps(pj, vj[c], acc[r][c]);
        }
    }
    for (int r = 0; r < OUTPUT_TILE; r++) {
        __m512 s = _mm512_set1_ps(inverse ? inverse[r] : 1.0f);
        for (int c = 0; c < HEAD / 16; c++) _mm512_storeu_ps(result[r] + 16 * c, inverse ? _mm512_mul_ps(acc[r][c], s) : acc[r][c]);
    }
}

/// Transposes 16 rows of 16 values in registers: afterwards `v[i]` lane `l` holds what `v[l]`
/// lane `i` held (pairs, then 4-value groups, then 128-bit blocks are interleaved).
AVX512 static void transpose16(__m512 v[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
    }
    // Within each 128-bit block b: v[4i + m] = rows 4i…4i+3 of column 4b + m.
    for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        v[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        v[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        v[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        v[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    __m512 out[16];
    for (int m = 0; m < 4; m++) {
        __m512 even = _mm512_shuffle_f32x4(v[m], v[4 + m], 0x88), odd = _mm512_shuffle_f32x4(v[m], v[4 + m], 0xDD);
        __m512 even2 = _mm512_shuffle_f32x4(v[8 + m], v[12 + m], 0x88), odd2 = _mm512_shuffle_f32x4(v[8 + m], v[12 + m], 0xDD);
        out[m] = _mm512_shuffle_f32x4(even, even2, 0x88);
        out[8 + m] = _mm512_shuffle_f32x4(even, even2, 0xDD);
        out[4 + m] = _mm512_shuffle_f32x4(odd, odd2, 0x88);
        out[12 + m] = _mm512_shuffle_f32x4(odd, odd2, 0xDD);
    }
    for (int i = 0; i < 16; i++) v[i] = out[i];
}

/// The keys [tokens, HEAD] (row stride `ldk`) transposed into tiles of KEY_TILE keys, each
/// [HEAD, KEY_TILE] and consecutive, so the products stream them in order; groups of 16 keys
/// by register transposes, the rest one value at a time, the padding keys 0 (their scores
/// are never used).
AVX512 static void packKeys(size_t tokens, const float *k, size_t ldk, size_t keys, float *packedK) {
    size_t grouped = tokens - tokens % 16;
    for (size_t j = 0; j < grouped; j += 16) {
        float *tile = packedK + (j / KEY_TILE) * KEY_TILE * HEAD + j % KEY_TILE;
        for (int d = 0; d < HEAD; d += 16) {
            __m512 v[16];
            for (int i = 0; i < 16; i++) v[i] = _mm512_loadu_ps(k + (j + i) * ldk + d);
            transpose16(v);
            for (int i = 0; i < 16; i++) _mm512_storeu_ps(tile + (d + i) * KEY_TILE, v[i]);
        }
    }
    for (size_t j = grouped; j < keys; j++) {
        float *column = packedK + (j / KEY_TILE) * KEY_TILE * HEAD + j % KEY_TILE;
        for (int d = 0; d < HEAD; d++) column[d * KEY_TILE] = j < tokens ? k[j * ldk + d] : 0;
    }
}

AVX512 void cfm_attention_head(size_t tokens, float scale, const float *q, size_t ldq, const float *k, size_t ldk,
                               const float *v, size_t ldv, float *out, size_t ldo, float *scratch) {
    size_t keys = roundUp(tokens, KEY_TILE);
    float *packedK = (float *)roundUp((uintptr_t)scratch, SCRATCH_ALIGNMENT), *packedV = packedK + HEAD * keys,
          *scores = packedV + tokens * HEAD, *packedQ = scores + BLOCK * keys, *o = packedQ + BLOCK * HEAD;
    float rowMaxes[BLOCK * 16];  // per query row, the maximum of its scores so far in 16 lanes
    packKeys(tokens, k, ldk, keys, packedK);
    // Values packed densely [tokens, HEAD]: a 128-row slice is 32 KB of consecutive lines, where
    // rows 3·dim floats apart would fall into a few L1 sets and evict each other.
    for (size_t j = 0; j < tokens; j++) memcpy(packedV + j * HEAD, v + j * ldv, HEAD * sizeof(float));
    __m512 scaleVector = _mm512_set1_ps(scale);
    for (size_t first = 0; first < tokens; first += BLOCK) {
        size_t rows = tokens - first < BLOCK ? tokens - first : BLOCK, tiles = roundUp(rows, QUERY_TILE);
        // The block's queries times `scale`, packed densely [tiles, HEAD]: a tile's broadcasts
        // come from 3 KB of consecutive lines, not from rows 3·dim floats apart, and the scores
        // need no scaling after (the same values: scale is 1/8 for 64-wide heads, a power of
        // two). Padding rows are zero queries: their scores are 0 and their outputs are dropped.
        for (size_t i = 0; i < tiles; i++)
            for (int c = 0; c < HEAD; c += 16)
                _mm512_storeu_ps(packedQ + i * HEAD + c,
                                 i < rows ? _mm512_mul_ps(_mm512_loadu_ps(q + (first + i) * ldq + c), scaleVector) : _mm512_setzero_ps());
        // Key tiles outside, query tiles inside: each 8 KB key tile is read from L1 by the
        // whole block (the block's queries, 24 KB, stay in L1 too).
        for (size_t i = 0; i < tiles * 16; i++) rowMaxes[i] = -INFINITY;
        for (size_t j = 0; j < keys; j += KEY_TILE) {
            size_t valid = tokens - j < KEY_TILE ? tokens - j : KEY_TILE;
            __mmask16 valid0 = valid >= 16 ? 0xFFFF : (__mmask16)((1u << valid) - 1);
            __mmask16 valid1 = valid >= 32 ? 0xFFFF : valid > 16 ? (__mmask16)((1u << (valid - 16)) - 1) : 0;
            for (size_t i = 0; i < tiles; i += QUERY_TILE)
                scoreTile(packedQ + i * HEAD, packedK + j * HEAD, keys, scores + i * keys + j, rowMaxes + 16 * i, valid0, valid1);
        }
        float inverse[BLOCK];
        exponentiateRows(scores, rows, tokens, keys, rowMaxes, inverse);
        for (size_t i = rows; i < tiles; i++) inverse[i] = 0;  // padding rows
        // Outputs accumulate in scratch `o` [tiles, HEAD]; the last slice stores the block's rows
        // straight into `out` (no copy pass after), padding rows stay in `o`.
        float *rowsOfO[BLOCK], *rowsOfOut[BLOCK];
        for (size_t i = 0; i < tiles; i++) {
            rowsOfO[i] = o + i * HEAD;
            rowsOfOut[i] = i < rows ? out + (first + i) * ldo : rowsOfO[i];
        }
        for (size_t slice = 0; slice < tokens; slice += VALUE_SLICE) {
            size_t end = tokens - slice < VALUE_SLICE ? tokens : slice + VALUE_SLICE;
            for (size_t i = 0; i < tiles; i += OUTPUT_TILE)
                valueTile(scores + i * keys, keys, packedV, HEAD, slice, end, rowsOfO + i,
                          end == tokens ? rowsOfOut + i : rowsOfO + i, slice > 0, end == tokens ? inverse + i : NULL);
        }
    }
}
