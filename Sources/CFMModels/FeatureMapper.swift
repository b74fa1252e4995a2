import CFMTensor

/// A crossmodal feature mapper: the per-pixel MLP
/// `Linear(in→h) → GELU → Linear(h→h) → GELU → Linear(h→out)` with h = (in + out) / 2,
/// keys `input.* projection.* output.*`. 2D→3D maps 768 → D3D, 3D→2D maps D3D → 768.
public struct FeatureMapper: Sendable {
    public let inFeatures: Int, hidden: Int, outFeatures: Int
    public let input: Linear, projection: Linear, output: Linear

    /// Hidden width of a mapper between `inFeatures` and `outFeatures`.
    public static func hiddenWidth(_ inFeatures: Int, _ outFeatures: Int) -> Int { (inFeatures + outFeatures) / 2 }

    /// Loads a mapper, checking every shape against `inFeatures` → `outFeatures`; `precision`
    /// applies to all three layers, which at fp32 run on the packed kernel where the CPU has it
    /// (`FP32Kernel.current`: 20 % faster than OpenBLAS on the map stage). Mappers built from
    /// parameters (training) stay plain: the optimiser reads and replaces their weights.
    public init(weights: SafeTensors, inFeatures: Int, outFeatures: Int, precision: Precision = .fp32) throws {
        let h = Self.hiddenWidth(inFeatures, outFeatures)
        (self.inFeatures, hidden, self.outFeatures) = (inFeatures, h, outFeatures)
        input = try Linear(weights, "input", in: inFeatures, out: h, precision: precision, fp32Kernel: .current)
        projection = try Linear(weights, "projection", in: h, out: h, precision: precision, fp32Kernel: .current)
        output = try Linear(weights, "output", in: h, out: outFeatures, precision: precision, fp32Kernel: .current)
    }

    /// A mapper from its parameters in `parameterShapes` order
    /// (input W, b, projection W, b, output W, b).
    public init(inFeatures: Int, outFeatures: Int, parameters p: [[Float]]) {
        let h = Self.hiddenWidth(inFeatures, outFeatures)
        precondition(p.count == 6, "a mapper has 6 parameter tensors")
        (self.inFeatures, hidden, self.outFeatures) = (inFeatures, h, outFeatures)
        input = Linear(weight: p[0], bias: p[1], inFeatures: inFeatures, outFeatures: h)
        projection = Linear(weight: p[2], bias: p[3], inFeatures: h, outFeatures: h)
        output = Linear(weight: p[4], bias: p[5], inFeatures: h, outFeatures: outFeatures)
    }

    /// The parameters in `parameterShapes` order.
    public var parameters: [[Float]] {
        [input.weight, input.bias!, projection.weight, projection.bias!, output.weight, output.bias!]
    }

    /// All parameters concatenated in `parameterShapes` order (what the optimiser updates).
    public var flatParameters: [Float] { parameters.flatMap { $0 } }

    /// Start of each parameter tensor inside `flatParameters`, plus the total count last.
    public var parameterOffsets: [Int] { parameters.reduce(into: [0]) { $0.append($0.last! + $1.count) } }

    /// A mapper from `flatParameters`-laid-out values.
    public init(inFeatures: Int, outFeatures: Int, flat: [Float]) {
        let sizes = Self.parameterShapes(inFeatures: inFeatures, outFeatures: outFeatures).map { $0.1.reduce(1, *) }
        precondition(flat.count == sizes.reduce(0, +), "\(flat.count) values do not fit the mapper")
        var start = 0
        let parts = sizes.map { n in defer { start += n }; return Array(flat[start..<(start + n)]) }
        self.init(inFeatures: inFeatures, outFeatures: outFeatures, parameters: parts)
    }

    /// The parameters under their key names, ready for `SafeTensors.write`.
    public var tensors: [String: Tensor] {
        let shapes = Self.parameterShapes(inFeatures: inFeatures, outFeatures: outFeatures)
        return Dictionary(uniqueKeysWithValues: zip(shapes, parameters).map { ($0.0, Tensor(shape: $0.1, scalars: $1)) })
    }

    /// Every parameter: key names and shapes.
    public static func parameterShapes(inFeatures: Int, outFeatures: Int) -> [(String, [Int])] {
        let h = hiddenWidth(inFeatures, outFeatures)
        return [("input.weight", [h, inFeatures]), ("input.bias", [h]), ("projection.weight", [h, h]),
                ("projection.bias", [h]), ("output.weight", [outFeatures, h]), ("output.bias", [outFeatures])]
    }

    /// `y [rows, out]` for `x [rows, in]`; `scratch` holds at least 2 · rows · hidden values.
    /// Single-threaded: callers split rows across cores.
    public func apply(rows: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                      scratch: UnsafeMutablePointer<Float>) {
        input.apply(rows: rows, x: x, y: scratch)
        finish(rows: rows, firstLayer: scratch, y: y, scratch: scratch + rows * hidden)
    }

    /// The rest of the MLP from the first layer's output (bias included, before its GELU):
    /// `firstLayer` [rows, hidden] is overwritten; `scratch` holds rows · hidden values.
    ///
    /// The first layer is linear, so it commutes with the (linear) interpolation and
    /// pooling that build per-pixel features: callers may apply it on the 28×28 grid or on
    /// the 1024 centres and interpolate the hidden vectors instead (same output, far fewer FLOPs).
    public func finish(rows: Int, firstLayer h1: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>,
                       scratch h2: UnsafeMutablePointer<Float>) {
        geluInPlace(h1, count: rows * hidden)
        projection.applyGELU(rows: rows, x: h1, y: h2)
        output.apply(rows: rows, x: h2, y: y)
    }

    /// FLOPs per mapped row.
    public var flopsPerRow: Double { input.flops(rows: 1) + projection.flops(rows: 1) + output.flops(rows: 1) }
}
