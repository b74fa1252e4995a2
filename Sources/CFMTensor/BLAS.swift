import COpenBLAS
import Foundation

/// OpenBLAS, used single-threaded: the engine splits work across cores itself
/// (`parallelChunks`), so OpenBLAS's own pool would only spin against it.
public enum BLAS {
    /// Set once, before the first GEMM: kernels matched to the CPU, one thread.
    static let configured: Void = {
        selectKernelsByFeatures()
        openblas_set_num_threads(1)
    }()

    /// Threads OpenBLAS uses per call (1 once a GEMM has run).
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// The kernel set OpenBLAS runs ("Cooperlake", "SkylakeX", "Haswell", …).
    public static var kernels: String { String(cString: openblas_get_corename()) }

    /// OpenBLAS chooses its kernels when it loads, by CPU model number, and takes its generic
    /// SSE3 set ("Prescott") for a model it does not know — an AVX-512 CPU newer than the
    /// library then runs every GEMM ~3× slower (OpenBLAS 0.3.21 on a Xeon of model 207:
    /// 44 against 145 GFLOP/s on the ViT's qkv GEMM, tools/gemm-bench). Unless `OPENBLAS_CORETYPE` was set by the user, that
    /// fallback is replaced by the kernels the CPU's features allow, through the same
    /// variable and OpenBLAS's own (dynamic-architecture) selection entry points.
    static func selectKernelsByFeatures() {
        guard getenv("OPENBLAS_CORETYPE") == nil, kernels == "Prescott",
              let core = CPUFeatures.current.openBLASCore,
              let quit = dynamicSymbol("gotoblas_dynamic_quit"), let initialize = dynamicSymbol("gotoblas_dynamic_init")
        else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        quit()
        initialize()
    }

    /// A `void f(void)` function of the loaded libraries, if there is one by that name.
    private static func dynamicSymbol(_ name: String) -> (@convention(c) () -> Void)? {
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), name).map { unsafeBitCast($0, to: (@convention(c) () -> Void).self) }
    }
}

/// `C = alpha · op(A) · op(B) + beta · C` on row-major matrices (`cblas_sgemm`).
///
/// `op(A)` is m×k and `op(B)` is k×n; when `transposeA` is set, `A` is stored k×m.
/// Leading dimensions let callers address column blocks in place (attention heads,
/// the q/k/v thirds of a fused projection) without copies.
public func gemm(
    m: Int, n: Int, k: Int, alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int, transposeA: Bool = false,
    b: UnsafePointer<Float>, ldb: Int, transposeB: Bool = false,
    beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    BLAS.configured
    cblas_sgemm(
        CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// `C += Aᵀ·A` for a row-major `A` [k, n] (`cblas_ssyrk`): a sum of outer products of A's
/// rows at half a GEMM's cost. Only C's upper triangle (row ≤ column) is updated.
public func symmetricRankUpdate(n: Int, k: Int, a: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>) {
    BLAS.configured
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(n), Int32(k), 1, a, Int32(n), 1, c, Int32(n))
}

/// PyTorch's `Linear`: `y[rows×out] = x[rows×in] · Wᵀ + bias`, with `W` stored [out, in].
///
/// With `accumulate`, the product (and bias) is added to what `y` holds — a residual
/// connection then costs no extra buffer. `ldx` / `ldy` default to dense rows. Rows are
/// split across cores.
public func linear(
    rows: Int, inFeatures: Int, outFeatures: Int,
    x: UnsafePointer<Float>, ldx: Int? = nil,
    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
    y: UnsafeMutablePointer<Float>, ldy: Int? = nil, accumulate: Bool = false
) {
    let ldx = ldx ?? inFeatures, ldy = ldy ?? outFeatures
    parallelChunks(rows, minimumChunk: 32) { range in
        if let bias { addBias(bias, rows: range, y: y, ldy: ldy, count: outFeatures, accumulate: accumulate) }
        gemm(m: range.count, n: outFeatures, k: inFeatures,
             a: x + range.lowerBound * ldx, lda: ldx,
             b: weight, ldb: inFeatures, transposeB: true,
             beta: (bias != nil || accumulate) ? 1 : 0, c: y + range.lowerBound * ldy, ldc: ldy)
    }
}

/// The bias prologue of a linear layer's GEMM: rows `rows` of `y` (stride `ldy`) set to `bias`
/// [count], or with `accumulate` increased by it; the GEMM then adds the product (beta = 1).
func addBias(_ bias: UnsafePointer<Float>, rows: Range<Int>, y: UnsafeMutablePointer<Float>, ldy: Int, count: Int,
             accumulate: Bool) {
    for r in rows {
        let row = y + r * ldy
        if accumulate {
            for j in 0..<count { row[j] += bias[j] }
        } else {
            row.update(from: bias, count: count)
        }
    }
}
