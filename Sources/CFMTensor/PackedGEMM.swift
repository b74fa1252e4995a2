import CPackedGEMM

/// Which kernel runs the fp32 GEMM of a linear layer that may use either.
///
/// `packed` is cfm's own AVX-512 kernel (`Sources/CPackedGEMM`): the weight is packed once, at
/// load, into the layout its 9×48 register tiles stream (OpenBLAS re-packs all of W on every
/// call, on every core), and the bias, a residual sum and fc1's GELU are applied to each tile in
/// registers instead of in passes of their own. `blas` is OpenBLAS (`linear`), on any CPU.
/// Which layers use `packed` is decided per model by measurement: the transformer blocks of both
/// extractors and the mappers do (`FP32Kernel.current`), the mini-PointNet does not.
public enum FP32Kernel: Sendable {
    case blas, packed

    /// `packed` on a CPU with AVX-512 F/BW/DQ/VL, else `blas`; chosen once from `CPUFeatures.current`.
    public static let current: FP32Kernel = CPUFeatures.current.avx512 ? .packed : .blas
}

/// A weight [outFeatures, inFeatures] (PyTorch `Linear` layout) packed once, at load, in the
/// layout one of cfm's own GEMM kernels streams (`Element`: the values it multiplies):
/// immutable once built, shared by every worker. `PackedMatrix` (fp32) and `BF16Matrix`.
public final class PackedWeights<Element>: @unchecked Sendable {
    public let outFeatures: Int, inFeatures: Int
    /// The kernel's layout: `count(out, in)` values.
    let packed: UnsafeMutablePointer<Element>

    /// Packs `weight` [outFeatures, inFeatures] with a kernel's C functions: `count(out, in)`
    /// values, written by `pack(out, in, weight, ldw, packed)`.
    init(weight: UnsafePointer<Float>, outFeatures: Int, inFeatures: Int, count: (Int32, Int32) -> Int,
         pack: (Int32, Int32, UnsafePointer<Float>, Int32, UnsafeMutablePointer<Element>) -> Void) {
        (self.outFeatures, self.inFeatures) = (outFeatures, inFeatures)
        let (n, k) = (Int32(outFeatures), Int32(inFeatures))
        packed = .allocate(capacity: count(n, k))
        pack(n, k, weight, k, packed)
    }

    deinit { packed.deallocate() }
}

/// A weight packed for the AVX-512 fp32 kernel (`packedLinear`): `cfm_f32_packed_count(out, in)`
/// floats, panels of 48 outputs × blocks of 512 inputs (outputs padded to a multiple of 48 with
/// zeros). It replaces the plain weight (packing only moves values, so `unpacked()` gives the
/// weight back exactly).
public typealias PackedMatrix = PackedWeights<Float>

extension PackedWeights where Element == Float {
    /// Packs `weight` [outFeatures, inFeatures]; the CPU must have AVX-512 (`FP32Kernel.current`).
    public convenience init(weight: UnsafePointer<Float>, outFeatures: Int, inFeatures: Int) {
        precondition(CPUFeatures.current.avx512, "packed fp32 weights need AVX-512 (check FP32Kernel.current before loading)")
        self.init(weight: weight, outFeatures: outFeatures, inFeatures: inFeatures, count: cfm_f32_packed_count,
                  pack: cfm_f32_pack_weights)
    }

    /// The weight [outFeatures, inFeatures] as it was before packing (for readers of a layer's
    /// parameters; built on each call).
    public func unpacked() -> [Float] {
        let panel = Int(CFM_F32_PANEL), depth = Int(cfm_f32_block_depth(Int32(inFeatures)))
        let paddedOut = (outFeatures + panel - 1) / panel * panel
        var weight = [Float](repeating: 0, count: outFeatures * inFeatures)
        for o in 0..<outFeatures {
            for i in 0..<inFeatures {
                let block = i / depth * depth, blockDepth = min(depth, inFeatures - block)
                weight[o * inFeatures + i] =
                    packed[block * paddedOut + o / panel * blockDepth * panel + (i - block) * panel + o % panel]
            }
        }
        return weight
    }
}

/// `c[m, n] = GELU?(a[m, k] · Wᵀ + bias (+ c))` (n = `weight.outFeatures`, k = `weight.inFeatures`)
/// by the packed kernel: with `accumulate` added to what `c` holds; with `gelu` each output
/// replaced by its GELU (the arithmetic of `geluInPlace`, the same bits as calling it after).
/// Single-threaded; each output's summation order depends only on k, so any split of the rows
/// gives the same bits. `lda` / `ldc` are row strides.
public func packedMatMul(m: Int, a: UnsafePointer<Float>, lda: Int, weight: PackedMatrix, bias: UnsafePointer<Float>?,
                         c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool = false, gelu: Bool = false) {
    let epilogue = (accumulate ? CFM_F32_ACCUMULATE : 0) | (gelu ? CFM_F32_GELU : 0)
    cfm_f32_gemm(Int32(m), Int32(weight.outFeatures), Int32(weight.inFeatures), a, Int32(lda), weight.packed, bias,
                 c, Int32(ldc), epilogue)
}

/// `linear` on the packed kernel: `y[rows×out] = GELU?(x[rows×in] · Wᵀ + bias (+ y))`, the bias,
/// the residual (`accumulate`) and the GELU (`gelu`) applied in the kernel's epilogue. Rows are
/// split across cores as in `linear`.
public func packedLinear(
    rows: Int, x: UnsafePointer<Float>, ldx: Int? = nil, weight: PackedMatrix, bias: UnsafePointer<Float>?,
    y: UnsafeMutablePointer<Float>, ldy: Int? = nil, accumulate: Bool = false, gelu: Bool = false
) {
    let ldx = ldx ?? weight.inFeatures, ldy = ldy ?? weight.outFeatures
    parallelChunks(rows, minimumChunk: 32) { range in
        packedMatMul(m: range.count, a: x + range.lowerBound * ldx, lda: ldx, weight: weight, bias: bias,
                     c: y + range.lowerBound * ldy, ldc: ldy, accumulate: accumulate, gelu: gelu)
    }
}
