import CBF16

/// The number format of the GEMM-heavy layers (the transformer blocks' projections and MLPs,
/// mini-PointNet's wide convolutions, Point-MAE's positional MLP, the mappers).
///
/// `bf16` rounds weights (once, at load) and activations (per call) to bfloat16 — 8 bits of
/// mantissa, round to nearest even — and accumulates their products in fp32; the outputs and
/// everything else (LayerNorm, softmax, GELU, residuals, attention's own products, geometry,
/// scoring) stay fp32. It needs AVX512-BF16 (`CPUFeatures.current`).
public enum Precision: String, Sendable, Codable, CaseIterable {
    case fp32, bf16
}

/// Why a precision cannot be used.
public enum PrecisionError: Error, Equatable, CustomStringConvertible {
    case unsupported(Precision)

    public var description: String {
        switch self {
        case let .unsupported(precision):
            "precision \(precision.rawValue) needs a CPU with AVX512-BF16 (cpuid leaf 7.1 EAX bit 5), which this one lacks: use fp32"
        }
    }
}

/// A weight [outFeatures, inFeatures] (PyTorch `Linear` layout) rounded to bf16 and packed
/// for `bf16Linear`: `cfm_bf16_packed_count(out, in)` values, panels of 64 outputs × pairs of inputs.
public typealias BF16Matrix = PackedWeights<UInt16>

extension PackedWeights where Element == UInt16 {
    /// Rounds and packs `weight` [outFeatures, inFeatures]; the CPU must have AVX512-BF16.
    public convenience init(weight: UnsafePointer<Float>, outFeatures: Int, inFeatures: Int) {
        precondition(CPUFeatures.current.avx512BF16, "bf16 weights need AVX512-BF16 (check CPUFeatures before loading)")
        self.init(weight: weight, outFeatures: outFeatures, inFeatures: inFeatures, count: cfm_bf16_packed_count,
                  pack: cfm_bf16_pack_weights)
    }
}

/// `c[m, n] = bf16(a)[m, k] · bf16(W)ᵀ` (n = `weight.outFeatures`, k = `weight.inFeatures`) with
/// fp32 accumulation; with `accumulate` added to what `c` holds. Single-threaded, fixed
/// summation order (the same bits run to run). `lda` / `ldc` are row strides.
public func bf16MatMul(m: Int, a: UnsafePointer<Float>, lda: Int, weight: BF16Matrix,
                       c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
    cfm_bf16_gemm(Int32(m), Int32(weight.outFeatures), Int32(weight.inFeatures), a, Int32(lda), weight.packed,
                  c, Int32(ldc), accumulate ? 1 : 0)
}

/// `linear` with bf16 GEMMs: `y[rows×out] = bf16(x)[rows×in] · bf16(W)ᵀ + bias`, fp32
/// accumulation and output; with `accumulate` added to what `y` holds (residuals). Rows are
/// split across cores as in `linear`.
public func bf16Linear(
    rows: Int, x: UnsafePointer<Float>, ldx: Int? = nil, weight: BF16Matrix, bias: UnsafePointer<Float>?,
    y: UnsafeMutablePointer<Float>, ldy: Int? = nil, accumulate: Bool = false
) {
    let ldx = ldx ?? weight.inFeatures, ldy = ldy ?? weight.outFeatures, n = weight.outFeatures
    parallelChunks(rows, minimumChunk: 32) { range in
        if let bias { addBias(bias, rows: range, y: y, ldy: ldy, count: n, accumulate: accumulate) }
        bf16MatMul(m: range.count, a: x + range.lowerBound * ldx, lda: ldx, weight: weight,
                   c: y + range.lowerBound * ldy, ldc: ldy, accumulate: bias != nil || accumulate)
    }
}

/// `values` rounded to bf16 and widened back to fp32 (the exact values the bf16 GEMM multiplies).
public func bf16Rounded(_ values: [Float]) -> [Float] {
    precondition(CPUFeatures.current.avx512BF16, "bf16 rounding needs AVX512-BF16")
    var halves = [UInt16](repeating: 0, count: values.count)
    cfm_bf16_round(values, &halves, values.count)
    return halves.map { Float(bitPattern: UInt32($0) << 16) }
}
