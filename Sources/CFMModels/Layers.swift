import CFMTensor

/// A PyTorch `Linear` layer: weight [outFeatures, inFeatures], optional bias [outFeatures].
public struct Linear: Sendable {
    public let inFeatures: Int, outFeatures: Int
    public let weight: [Float]
    public let bias: [Float]?

    /// A layer from its parameters: `weight` [out, in] row-major, `bias` [out].
    public init(weight: [Float], bias: [Float]?, inFeatures: Int, outFeatures: Int) {
        precondition(weight.count == inFeatures * outFeatures && (bias?.count ?? outFeatures) == outFeatures,
                     "parameters do not fit a \(inFeatures)→\(outFeatures) layer")
        (self.weight, self.bias, self.inFeatures, self.outFeatures) = (weight, bias, inFeatures, outFeatures)
    }

    /// Loads `name.weight` (and `name.bias` when `hasBias`) from `weights`, checking shapes.
    /// `weightShape` overrides the stored weight shape (e.g. a Conv2d's [out, in, kh, kw]).
    public init(_ weights: SafeTensors, _ name: String, in inFeatures: Int, out outFeatures: Int,
                hasBias: Bool = true, weightShape: [Int]? = nil) throws {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = try weights.tensor("\(name).weight", shape: weightShape ?? [outFeatures, inFeatures]).scalars
        bias = hasBias ? try weights.tensor("\(name).bias", shape: [outFeatures]).scalars : nil
    }

    /// `y[rows, out] = x[rows, in] · Wᵀ + b`; with `accumulate`, adds to `y` (residuals).
    public func apply(rows: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        linear(rows: rows, inFeatures: inFeatures, outFeatures: outFeatures,
               x: x, weight: weight, bias: bias, y: y, accumulate: accumulate)
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
