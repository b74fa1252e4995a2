import Foundation
import CFMTensor

// Small geometry helpers of the synthetic scene generator. Lengths are metres.

/// Hermite step from 0 (x ≤ edge0) to 1 (x ≥ edge1).
func smoothstep(_ edge0: Float, _ edge1: Float, _ x: Float) -> Float {
    let t = min(max((x - edge0) / (edge1 - edge0), 0), 1)
    return t * t * (3 - 2 * t)
}

/// `v` rotated by `angle` radians (counter-clockwise).
func rotated(_ v: SIMD2<Float>, by angle: Float) -> SIMD2<Float> {
    let (c, s) = (cos(angle), sin(angle))
    return SIMD2(c * v.x - s * v.y, s * v.x + c * v.y)
}

func length(_ v: SIMD2<Float>) -> Float { (v * v).sum().squareRoot() }
func length(_ v: SIMD3<Float>) -> Float { (v * v).sum().squareRoot() }
func dot(_ a: SIMD3<Float>, _ b: SIMD3<Float>) -> Float { (a * b).sum() }
func normalized(_ v: SIMD3<Float>) -> SIMD3<Float> { v / length(v) }
func cross(_ a: SIMD3<Float>, _ b: SIMD3<Float>) -> SIMD3<Float> {
    SIMD3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x)
}

/// Distance from `p` to the segment `a`–`b`.
func distanceToSegment(_ p: SIMD2<Float>, _ a: SIMD2<Float>, _ b: SIMD2<Float>) -> Float {
    let ab = b - a
    let t = min(max(((p - a) * ab).sum() / max((ab * ab).sum(), 1e-12), 0), 1)
    return length(p - (a + t * ab))
}

/// Signed distance to a rectangle of half-size `half` with corners rounded by `radius` (< 0 inside).
func roundedRectangleDistance(_ p: SIMD2<Float>, half: SIMD2<Float>, radius: Float) -> Float {
    let q = SIMD2(abs(p.x), abs(p.y)) - half + SIMD2(repeating: radius)
    let outside = SIMD2(max(q.x, 0), max(q.y, 0))
    return length(outside) + min(max(q.x, q.y), 0) - radius
}

/// Signed distance to a regular hexagon with inradius `inradius`, flat sides facing ±y (< 0 inside).
func hexagonDistance(_ p: SIMD2<Float>, inradius: Float) -> Float {
    let k = SIMD3<Float>(-0.866_025_4, 0.5, 0.577_350_3)
    var q = SIMD2(abs(p.x), abs(p.y))
    q -= 2 * min(k.x * q.x + k.y * q.y, 0) * SIMD2(k.x, k.y)
    q -= SIMD2(min(max(q.x, -k.z * inradius), k.z * inradius), inradius)
    return length(q) * (q.y < 0 ? -1 : 1)
}

extension SeededRandom {
    /// Uniform angle in [0, 2π).
    mutating func angle() -> Float { uniform(0, 2 * .pi) }

    /// A random element of `values`.
    mutating func pick<T>(_ values: [T]) -> T { values[Int(next() % UInt64(values.count))] }

    /// Uniform integer in `range`.
    mutating func integer(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }
}

/// `value` mixed into `state` (SplitMix64 finaliser): a hash for seeds and noise lattices.
@inline(__always)
func mix(_ state: UInt64, _ value: UInt64) -> UInt64 {
    var z = (state ^ value) &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// A 64-bit hash of `values`, for per-sample seeds.
func mixSeed(_ values: UInt64...) -> UInt64 {
    values.reduce(0x243F_6A88_85A3_08D3, mix)
}

/// A stable seed for a name (FNV-1a), so a class's samples do not depend on which classes are generated.
func nameSeed(_ name: String) -> UInt64 {
    name.utf8.reduce(0xCBF2_9CE4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01B3 }
}
