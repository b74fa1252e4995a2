import CVectorMath
import Foundation

/// GELU in place on `count` values, erf form (PyTorch's default `F.gelu`):
/// `x · ½ · (1 + erf(x / √2))`, erf as `errorFunction`, exponentials as `exponential` (the
/// same formulas, 16 lanes at a time in `cfm_gelu`; the packed GEMM's GELU epilogue,
/// `packedLinear(gelu: true)`, runs the same inline function, so it gives the same bits).
/// Large buffers are split across cores.
public func geluInPlace(_ x: UnsafeMutablePointer<Float>, count: Int, path: VectorPath = .current) {
    parallelChunks(count, minimumChunk: 16384) { range in
        cfm_gelu(x + range.lowerBound, range.count, path.rawValue)
    }
}

/// erf(x) within 1.5e−7 absolute (Abramowitz & Stegun 7.1.26): 1 − t·P(t)·e^(−x²) with
/// t = 1 / (1 + 0.3275911·|x|), sign restored. The one-value form of `cfm_gelu`'s erf, for
/// code that needs single values (GELU's derivative in mapper training).
@inline(__always)
public func errorFunction(_ x: Float) -> Float {
    let a = abs(x)
    let t = 1 / (1 + 0.3275911 * a)
    var p: Float = 1.061405429
    p = p * t - 1.453152027
    p = p * t + 1.421413741
    p = p * t - 0.284496736
    p = p * t + 0.254829592
    let y = 1 - p * t * exponential(-a * a)
    return x < 0 ? -y : y
}

/// ReLU in place.
public func reluInPlace(_ x: UnsafeMutablePointer<Float>, count: Int) {
    parallelChunks(count, minimumChunk: 65536) { range in
        for i in range { x[i] = x[i] > 0 ? x[i] : 0 }  // a select, so the loop vectorises
    }
}

/// Softmax over each of `rows` rows of `cols` values (row stride `ld`), in place,
/// subtracting the row maximum first as PyTorch does; exponentials as `exponential` (16 lanes
/// at a time in `cfm_softmax_rows`). Rows are split across cores (inline when called from a
/// worker, as attention does).
public func softmaxRowsInPlace(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ld: Int? = nil,
                               path: VectorPath = .current) {
    let ld = ld ?? cols
    parallelChunks(rows, minimumChunk: max(1, 16384 / max(1, cols))) { range in
        cfm_softmax_rows(x + range.lowerBound * ld, range.count, cols, ld, path.rawValue)
    }
}

/// `eˣ` to within 2 ulp for x ≤ 88 (the one-value form of the vector kernels' exponential):
/// 2ⁿ · e^r with n = round(x / ln 2) (by the 1.5·2²³ trick), r reduced in two steps
/// (Cody–Waite), and a degree-6 Taylor polynomial for e^r on |r| ≤ ln2/2. Arguments below
/// −87.3 give exactly 0: results below the smallest normal float would be subnormal, and
/// subnormal operands make the next GEMM an order of magnitude slower.
@inline(__always)
public func exponential(_ x: Float) -> Float {
    let underflows = x < -87.3
    let x = Swift.max(x, -87.3)
    let shifted = x * 1.44269504088896341 + 12582912  // 1.5·2²³: rounds x/ln2 into the low mantissa bits
    let n = shifted - 12582912
    let r = (x - n * 0.693359375) + n * 2.12194440e-4
    var p: Float = 1.0 / 720
    p = p * r + 1.0 / 120
    p = p * r + 1.0 / 24
    p = p * r + 1.0 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    let scale = Float(bitPattern: (shifted.bitPattern &- 0x4B40_0000 &+ 127) << 23)
    return underflows ? 0 : p * scale
}
