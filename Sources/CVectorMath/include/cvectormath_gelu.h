#pragma once
// GELU's arithmetic over 16-lane vectors (clang's ext_vector_type), as always-inlined functions:
// the one definition behind `cfm_gelu` (vector_math.c) and the packed GEMM's GELU epilogue
// (Sources/CPackedGEMM), so GELU of a value is the same bits in either. Each includer wraps
// them in its own target (AVX-512 or baseline x86-64) and builds with -ffp-contract=off (no
// fused multiply-adds, so every operation rounds the same way in every build). For C only:
// Swift has no counterpart of these vector types.
#include <stdint.h>
#include <string.h>

typedef float vf __attribute__((ext_vector_type(16)));
typedef int32_t vi __attribute__((ext_vector_type(16)));
typedef uint32_t vu __attribute__((ext_vector_type(16)));

// The helpers pass 16-lane vectors by value; they are always inlined, so the ABI of such
// arguments without AVX-512 (which clang warns about) never applies.
#pragma clang diagnostic ignored "-Wpsabi"
#define CFM_VECTOR_INLINE static inline __attribute__((always_inline))

CFM_VECTOR_INLINE vf splat(float x) { return (vf)x; }
/// Lane by lane: `a` where `mask` is set (all ones), else `b`.
CFM_VECTOR_INLINE vf blend(vi mask, vf a, vf b) { return (vf)(((vi)a & mask) | ((vi)b & ~mask)); }

/// eˣ: 2ⁿ · e^r with n = round(x / ln 2) (adding 1.5·2²³ rounds x/ln2 into the low mantissa
/// bits), r = x − n·ln2 in two steps (Cody–Waite), a degree-6 Taylor polynomial for e^r on
/// |r| ≤ ln2/2. Below −87.3 the result is exactly 0: it would be subnormal, and subnormal
/// operands make the next GEMM an order of magnitude slower. NaN stays NaN.
CFM_VECTOR_INLINE vf vexp(vf x) {
    vi underflows = x < -87.3f;
    x = blend(underflows, splat(-87.3f), x);
    vf shifted = x * 1.44269504088896341f + 12582912.0f;
    vf n = shifted - 12582912.0f;
    vf r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    vf p = splat(1.0f / 720);
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    vu scale = ((vu)shifted - 0x4B400000u + 127u) << 23;
    return blend(underflows, splat(0), p * (vf)scale);
}

/// erf(x) within 1.5e−7 (Abramowitz & Stegun 7.1.26): 1 − t·P(t)·e^(−x²) with
/// t = 1 / (1 + 0.3275911·|x|), the sign of x restored.
CFM_VECTOR_INLINE vf verf(vf x) {
    vf a = (vf)((vu)x & 0x7FFFFFFFu);
    vf t = 1.0f / (1.0f + 0.3275911f * a);
    vf p = splat(1.061405429f);
    p = p * t - 1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t - 0.284496736f;
    p = p * t + 0.254829592f;
    vf y = 1.0f - p * t * vexp(-a * a);
    return blend(x < 0, -y, y);
}

/// GELU, erf form: x · ½ · (1 + erf(x / √2)).
CFM_VECTOR_INLINE vf geluOf(vf v) { return 0.5f * v * (1.0f + verf(v * 0.70710678118654752f)); }

/// GELU of 16 values in place: `geluOf` for callers under another target than this header's
/// functions (an AVX-512 function may not pass them a vector by value; through memory the
/// values stay in registers once inlined).
CFM_VECTOR_INLINE void geluLanes(float x[16]) {
    vf v;
    memcpy(&v, x, sizeof v);
    v = geluOf(v);
    memcpy(x, &v, sizeof v);
}
