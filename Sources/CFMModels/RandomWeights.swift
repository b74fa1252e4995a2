import CFMTensor

/// Seeded random weights of the real architectures under the official key names, for
/// tests, the demo and benchmarks on machines that cannot download pretrained ones.
///
/// Scheme (timm-like, with non-trivial affine terms so that every parameter matters):
/// matrices and embeddings ~ truncated N(0, 0.02²); biases ~ N(0, 0.02²);
/// LayerNorm / BatchNorm weights ~ 1 + N(0, 0.05²) and biases ~ N(0, 0.05²); BatchNorm
/// running means ~ N(0, 0.05²) and running variances ~ 1 + |N(0, 0.1²)|.
/// Tensors are drawn in the order of `shapes`, so one seed always gives the same bytes.
public enum RandomWeights {
    /// Random tensors for `shapes` (name → shape, drawn in the given order).
    public static func generate(_ shapes: [(String, [Int])], seed: UInt64) -> [String: Tensor] {
        var rng = SeededRandom(seed: seed)
        let batchNorms = Set(shapes.compactMap { name, _ in
            name.hasSuffix(".running_mean") ? name.dropLast(".running_mean".count) : nil
        })
        var out: [String: Tensor] = [:]
        for (name, shape) in shapes {
            let count = shape.reduce(1, *)
            let layer = name.split(separator: ".").dropLast().joined(separator: ".")
            let isNorm = batchNorms.contains(Substring(layer)) || name.split(separator: ".").contains { $0.hasPrefix("norm") }
            let draw: (inout SeededRandom) -> Float
            switch (isNorm, name.split(separator: ".").last!) {
            case (true, "running_var"): draw = { 1 + abs(0.1 * $0.normal()) }
            case (true, "weight"): draw = { 1 + 0.05 * $0.normal() }
            case (true, _): draw = { 0.05 * $0.normal() }
            case (false, "bias"): draw = { 0.02 * $0.normal() }
            case (false, _): draw = { $0.truncatedNormal(std: 0.02) }
            }
            out[name] = Tensor(shape: shape, scalars: (0..<count).map { _ in draw(&rng) })
        }
        return out
    }
}

extension RandomWeights {
    /// PyTorch's default `Linear` initialisation, U(−1/√in, 1/√in) for weights and biases,
    /// of layers given as (name, shape) with weights [out, in] — how mappers start training.
    public static func linearDefault(_ shapes: [(String, [Int])], seed: UInt64) -> [String: Tensor] {
        var rng = SeededRandom(seed: seed)
        let fanIn = Dictionary(uniqueKeysWithValues: shapes.compactMap { name, shape in
            name.hasSuffix(".weight") ? (String(name.dropLast(".weight".count)), shape.last!) : nil
        })
        var out: [String: Tensor] = [:]
        for (name, shape) in shapes {
            let layer = String(name[..<name.lastIndex(of: ".")!])
            let bound = 1 / Float(fanIn[layer] ?? 1).squareRoot()
            out[name] = Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in rng.uniform(-bound, bound) })
        }
        return out
    }
}

extension VisionTransformer.Config {
    /// Every parameter of the full-depth model: timm / DINO key names and shapes.
    public var parameterShapes: [(String, [Int])] {
        var shapes: [(String, [Int])] = [
            ("cls_token", [1, 1, dim]), ("pos_embed", [1, tokens, dim]),
            ("patch_embed.proj.weight", [dim, channels, patchSize, patchSize]), ("patch_embed.proj.bias", [dim]),
        ]
        for i in 0..<depth {
            let p = "blocks.\(i)"
            shapes += [
                ("\(p).norm1.weight", [dim]), ("\(p).norm1.bias", [dim]),
                ("\(p).attn.qkv.weight", [3 * dim, dim]), ("\(p).attn.qkv.bias", [3 * dim]),
                ("\(p).attn.proj.weight", [dim, dim]), ("\(p).attn.proj.bias", [dim]),
                ("\(p).norm2.weight", [dim]), ("\(p).norm2.bias", [dim]),
                ("\(p).mlp.fc1.weight", [mlpHidden, dim]), ("\(p).mlp.fc1.bias", [mlpHidden]),
                ("\(p).mlp.fc2.weight", [dim, mlpHidden]), ("\(p).mlp.fc2.bias", [dim]),
            ]
        }
        return shapes + [("norm.weight", [dim]), ("norm.bias", [dim])]
    }
}

extension FeatureMapper {
    /// A mapper with PyTorch's default `Linear` initialisation from `seed` — how training starts.
    public static func initial(inFeatures: Int, outFeatures: Int, seed: UInt64) -> FeatureMapper {
        let shapes = parameterShapes(inFeatures: inFeatures, outFeatures: outFeatures)
        let tensors = RandomWeights.linearDefault(shapes, seed: seed)
        return FeatureMapper(inFeatures: inFeatures, outFeatures: outFeatures, parameters: shapes.map { tensors[$0.0]!.scalars })
    }
}
