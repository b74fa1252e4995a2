import CFMTensor

/// A PyTorch `Linear` layer: weight [outFeatures, inFeatures], optional bias [outFeatures].
/// At `Precision.bf16` the weight is also held rounded and packed for the bf16 GEMM, which
/// `apply` then uses (the fp32 weight stays for what reads it: folding, training, dumps).
public struct Linear: Sendable {
    public let inFeatures: Int, outFeatures: Int
    public let weight: [Float]
    public let bias: [Float]?
    /// The bf16 copy `apply` multiplies with; nil at fp32.
    public let bf16: BF16Matrix?

    /// A layer from its parameters: `weight` [out, in] row-major, `bias` [out].
    public init(weight: [Float], bias: [Float]?, inFeatures: Int, outFeatures: Int) {
        precondition(weight.count == inFeatures * outFeatures && (bias?.count ?? outFeatures) == outFeatures,
                     "parameters do not fit a \(inFeatures)→\(outFeatures) layer")
        (self.weight, self.bias, self.inFeatures, self.outFeatures) = (weight, bias, inFeatures, outFeatures)
        bf16 = nil
    }

    /// Loads `name.weight` (and `name.bias` when `hasBias`) from `weights`, checking shapes.
    /// `weightShape` overrides the stored weight shape (e.g. a Conv2d's [out, in, kh, kw]);
    /// at `.bf16` the weight is packed once here.
    public init(_ weights: SafeTensors, _ name: String, in inFeatures: Int, out outFeatures: Int,
                hasBias: Bool = true, weightShape: [Int]? = nil, precision: Precision = .fp32) throws {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        let weight = try weights.tensor("\(name).weight", shape: weightShape ?? [outFeatures, inFeatures]).scalars
        self.weight = weight
        bias = hasBias ? try weights.tensor("\(name).bias", shape: [outFeatures]).scalars : nil
        bf16 = precision == .bf16 ? BF16Matrix(weight: weight, outFeatures: outFeatures, inFeatures: inFeatures) : nil
    }

    /// `y[rows, out] = x[rows, in] · Wᵀ + b`; with `accumulate`, adds to `y` (residuals).
    /// bf16 GEMM when the layer holds a bf16 copy, else fp32.
    public func apply(rows: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        run(rows: rows, x: x, bias: bias, y: y, accumulate: accumulate)
    }

    /// `y[rows, out] = x[rows, in] · Wᵀ` without the bias, for callers that add it later
    /// (after blending rows); same GEMM as `apply`.
    public func multiply(rows: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        run(rows: rows, x: x, bias: nil, y: y, accumulate: false)
    }

    private func run(rows: Int, x: UnsafePointer<Float>, bias: [Float]?, y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        if let bf16 {
            bf16Linear(rows: rows, x: x, weight: bf16, bias: bias, y: y, accumulate: accumulate)
        } else {
            linear(rows: rows, inFeatures: inFeatures, outFeatures: outFeatures,
                   x: x, weight: weight, bias: bias, y: y, accumulate: accumulate)
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
