import CFMTensor

/// A PyTorch `Linear` layer: weight [outFeatures, inFeatures], optional bias [outFeatures].
/// At `Precision.bf16` the weight is also held rounded and packed for the bf16 GEMM, which
/// `apply` then uses (the fp32 weight stays for what reads it: folding, training, dumps). At fp32
/// with `FP32Kernel.packed` the weight is held only packed for the AVX-512 kernel (no plain copy).
public struct Linear: Sendable {
    public let inFeatures: Int, outFeatures: Int
    public let bias: [Float]?
    /// The bf16 copy `apply` multiplies with; nil at fp32.
    public let bf16: BF16Matrix?
    /// The fp32 weight: plain [out, in] for OpenBLAS (and for readers at bf16), or packed.
    let storage: Storage

    enum Storage: Sendable {
        case plain([Float])
        case packed(PackedMatrix)
    }

    /// The weight [out, in] row-major; for a packed layer unpacked on each read.
    public var weight: [Float] {
        switch storage {
        case let .plain(weight): weight
        case let .packed(packed): packed.unpacked()
        }
    }

    /// A layer from its parameters: `weight` [out, in] row-major, `bias` [out].
    public init(weight: [Float], bias: [Float]?, inFeatures: Int, outFeatures: Int) {
        precondition(weight.count == inFeatures * outFeatures && (bias?.count ?? outFeatures) == outFeatures,
                     "parameters do not fit a \(inFeatures)→\(outFeatures) layer")
        (self.bias, self.inFeatures, self.outFeatures) = (bias, inFeatures, outFeatures)
        storage = .plain(weight)
        bf16 = nil
    }

    /// Loads `name.weight` (and `name.bias` when `hasBias`) from `weights`, checking shapes.
    /// `weightShape` overrides the stored weight shape (e.g. a Conv2d's [out, in, kh, kw]);
    /// at `.bf16` the weight is packed once here, and so it is at `.fp32` when `fp32Kernel` is
    /// `.packed` (which needs AVX-512: pass `FP32Kernel.current`).
    public init(_ weights: SafeTensors, _ name: String, in inFeatures: Int, out outFeatures: Int,
                hasBias: Bool = true, weightShape: [Int]? = nil, precision: Precision = .fp32,
                fp32Kernel: FP32Kernel = .blas) throws {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        let weight = try weights.tensor("\(name).weight", shape: weightShape ?? [outFeatures, inFeatures]).scalars
        bias = hasBias ? try weights.tensor("\(name).bias", shape: [outFeatures]).scalars : nil
        bf16 = precision == .bf16 ? BF16Matrix(weight: weight, outFeatures: outFeatures, inFeatures: inFeatures) : nil
        storage = precision == .fp32 && fp32Kernel == .packed
            ? .packed(PackedMatrix(weight: weight, outFeatures: outFeatures, inFeatures: inFeatures)) : .plain(weight)
    }

    /// `y[rows, out] = x[rows, in] · Wᵀ + b`; with `accumulate`, adds to `y` (residuals).
    /// bf16 GEMM when the layer holds a bf16 copy, else fp32.
    public func apply(rows: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        run(rows: rows, x: x, bias: bias, y: y, accumulate: accumulate, gelu: false)
    }

    /// `y[rows, out] = GELU(x[rows, in] · Wᵀ + b)` (`geluInPlace`'s GELU): a transformer MLP's first
    /// layer. The packed kernel applies the GELU to each tile in registers; the other GEMMs are
    /// followed by a GELU pass over `y`. Either way the same bits as `apply` then `geluInPlace`.
    public func applyGELU(rows: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        run(rows: rows, x: x, bias: bias, y: y, accumulate: false, gelu: true)
    }

    /// `y[rows, out] = x[rows, in] · Wᵀ` without the bias, for callers that add it later
    /// (after blending rows); same GEMM as `apply`.
    public func multiply(rows: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        run(rows: rows, x: x, bias: nil, y: y, accumulate: false, gelu: false)
    }

    private func run(rows: Int, x: UnsafePointer<Float>, bias: [Float]?, y: UnsafeMutablePointer<Float>, accumulate: Bool,
                     gelu: Bool) {
        switch storage {
        case let .packed(packed):  // fp32 only; the bias, residual and GELU in the kernel's epilogue
            packedLinear(rows: rows, x: x, weight: packed, bias: bias, y: y, accumulate: accumulate, gelu: gelu)
        case let .plain(weight):
            if let bf16 {
                bf16Linear(rows: rows, x: x, weight: bf16, bias: bias, y: y, accumulate: accumulate)
            } else {
                linear(rows: rows, inFeatures: inFeatures, outFeatures: outFeatures,
                       x: x, weight: weight, bias: bias, y: y, accumulate: accumulate)
            }
            if gelu { geluInPlace(y, count: rows * outFeatures) }
        }
    }

    /// FLOPs (2 · multiply-adds) of `apply` on `rows` rows.
    public func flops(rows: Int) -> Double { 2 * Double(rows) * Double(inFeatures) * Double(outFeatures) }
}

/// A PyTorch `LayerNorm` over the last dimension.
public struct LayerNorm: Sendable {
    public let dim: Int
    public let eps: Float
    public let weight: [Float], bias: [Float]

    public init(_ weights: SafeTensors, _ name: String, dim: Int, eps: Float) throws {
        self.dim = dim
        self.eps = eps
        weight = try weights.tensor("\(name).weight", shape: [dim]).scalars
        bias = try weights.tensor("\(name).bias", shape: [dim]).scalars
    }

    /// Normalises `rows` rows of `x` into `y` (may alias).
    public func apply(rows: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        layerNorm(rows: rows, dim: dim, x: x, weight: weight, bias: bias, eps: eps, y: y)
    }
}
