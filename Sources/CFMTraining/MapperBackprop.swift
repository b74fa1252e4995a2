import CFMModels
import CFMTensor
import Foundation

/// Derivative of the exact GELU: Φ(x) + x·φ(x).
@inline(__always)
func geluDerivative(_ x: Float) -> Float {
    0.5 * (1 + errorFunction(x * 0.70710678118654752)) + x * 0.39894228040143268 * exponential(-0.5 * x * x)
}

extension FeatureMapper {
    /// Scratch values `trainStep` needs for `rows` rows.
    public func trainingScratchCount(rows: Int) -> Int { rows * (4 * hidden + outFeatures) }

    /// Forward and backward pass over `rows` rows for a loss whose gradient w.r.t. the
    /// output is computed by `lossGradient(y, dy)` (both [rows, out]).
    ///
    /// `h1` [rows, hidden] holds the first layer's output (bias included) and is overwritten
    /// with the gradient w.r.t. it, which the caller propagates to the first layer's inputs
    /// and weight (the first layer runs on the sources, not on pixels). Adds the bias
    /// gradient of the first layer and all gradients of the later layers to `grads`, a flat
    /// buffer in `flatParameters` layout.
    public func trainStep(rows n: Int, h1: UnsafeMutablePointer<Float>, grads: UnsafeMutablePointer<Float>,
                          scratch: UnsafeMutablePointer<Float>,
                          lossGradient: (_ y: UnsafePointer<Float>, _ dy: UnsafeMutablePointer<Float>) -> Void) {
        let h = hidden, o = outFeatures
        let a1 = scratch, h2 = a1 + n * h, a2 = h2 + n * h, da = a2 + n * h, y = da + n * h
        a1.update(from: h1, count: n * h)
        geluInPlace(a1, count: n * h)
        projection.apply(rows: n, x: a1, y: h2)
        a2.update(from: h2, count: n * h)
        geluInPlace(a2, count: n * h)
        output.apply(rows: n, x: a2, y: y)
        // dy overwrites y.
        lossGradient(y, y)
        let dy = y
        let offsets = parameterOffsets
        accumulate(dw: grads + offsets[4], db: grads + offsets[5], delta: dy, input: a2, rows: n, outFeatures: o, inFeatures: h)
        // da2 = dy · W3; dh2 = da2 ⊙ GELU'(h2)
        gemm(m: n, n: h, k: o, a: dy, lda: o, b: output.weight, ldb: h, c: da, ldc: h)
        for i in 0..<(n * h) { da[i] *= geluDerivative(h2[i]) }
        accumulate(dw: grads + offsets[2], db: grads + offsets[3], delta: da, input: a1, rows: n, outFeatures: h, inFeatures: h)
        // da1 = dh2 · W2; dh1 = da1 ⊙ GELU'(h1), into h1.
        gemm(m: n, n: h, k: h, a: da, lda: h, b: projection.weight, ldb: h, c: a2, ldc: h)
        for i in 0..<(n * h) { h1[i] = a2[i] * geluDerivative(h1[i]) }
        columnSums(h1, rows: n, cols: h, into: grads + offsets[1])
    }

    /// dW += deltaᵀ · input, db += Σ rows of delta.
    private func accumulate(dw: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>, delta: UnsafePointer<Float>,
                            input: UnsafePointer<Float>, rows n: Int, outFeatures o: Int, inFeatures i: Int) {
        gemm(m: o, n: i, k: n, a: delta, lda: o, transposeA: true, b: input, ldb: i, beta: 1, c: dw, ldc: i)
        columnSums(delta, rows: n, cols: o, into: db)
    }
}

/// `into[j] += Σ_r x[r, j]`.
func columnSums(_ x: UnsafePointer<Float>, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>) {
    for r in 0..<rows {
        let row = x + r * cols
        for j in 0..<cols { out[j] += row[j] }
    }
}

/// The training loss for one modality: 1 − mean cos(ŷ, e), with
/// cos = ŷ·e / max(‖ŷ‖‖e‖, 1e−6), averaged over `count` pixels in all.
public enum CosineLoss {
    public static let eps: Float = 1e-6

    /// Cosine similarity of one pair, and the gradient of −cos/`count` w.r.t. `yHat` into `dy`.
    @discardableResult
    public static func similarity(_ yHat: UnsafePointer<Float>, _ e: UnsafePointer<Float>, width: Int,
                                  count: Int, gradient dy: UnsafeMutablePointer<Float>?) -> Float {
        var dot: Float = 0, yy: Float = 0, ee: Float = 0
        for j in 0..<width { dot += yHat[j] * e[j]; yy += yHat[j] * yHat[j]; ee += e[j] * e[j] }
        let ny = yy.squareRoot(), ne = ee.squareRoot()
        let denominator = max(ny * ne, eps)
        let cos = dot / denominator
        if let dy {
            let scale = -1 / Float(count)
            if ny * ne > eps {
                // d cos / dŷ = e/(‖ŷ‖‖e‖) − cos · ŷ/‖ŷ‖²
                for j in 0..<width { dy[j] = scale * (e[j] / denominator - cos * yHat[j] / yy) }
            } else {
                for j in 0..<width { dy[j] = scale * e[j] / eps }
            }
        }
        return cos
    }
}
