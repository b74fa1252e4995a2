import COpenBLAS

/// The OpenBLAS thread pool that every GEMM of this module runs on.
public enum BLAS {
    /// Sets how many threads OpenBLAS uses for each call (deliberately, so BLAS threads
    /// and Dispatch workers do not oversubscribe the cores).
    public static func setThreads(_ count: Int) {
        openblas_set_num_threads(Int32(max(1, count)))
    }

    /// Threads OpenBLAS currently uses per call.
    public static var threads: Int { Int(openblas_get_num_threads()) }
}

/// `C = alpha · op(A) · op(B) + beta · C` on row-major matrices (`cblas_sgemm`).
///
/// `op(A)` is m×k and `op(B)` is k×n; when `transposeA` is set, `A` is stored k×m.
/// Leading dimensions let callers address column blocks in place (attention heads,
/// the q/k/v thirds of a fused projection) without copies.
@inlinable
public func gemm(
    m: Int, n: Int, k: Int, alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int, transposeA: Bool = false,
    b: UnsafePointer<Float>, ldb: Int, transposeB: Bool = false,
    beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    cblas_sgemm(
        CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// PyTorch's `Linear`: `y[rows×out] = x[rows×in] · Wᵀ + bias`, with `W` stored [out, in].
///
/// With `accumulate`, the product (and bias) is added to what `y` holds — a residual
/// connection then costs no extra buffer. `ldx` / `ldy` default to dense rows.
public func linear(
    rows: Int, inFeatures: Int, outFeatures: Int,
    x: UnsafePointer<Float>, ldx: Int? = nil,
    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
    y: UnsafeMutablePointer<Float>, ldy: Int? = nil, accumulate: Bool = false
) {
    let ldy = ldy ?? outFeatures
    if let bias {
        for r in 0..<rows {
            let row = y + r * ldy
            if accumulate {
                for j in 0..<outFeatures { row[j] += bias[j] }
            } else {
                row.update(from: bias, count: outFeatures)
            }
        }
    }
    gemm(m: rows, n: outFeatures, k: inFeatures,
         a: x, lda: ldx ?? inFeatures,
         b: weight, ldb: inFeatures, transposeB: true,
         beta: (bias != nil || accumulate) ? 1 : 0, c: y, ldc: ldy)
}
