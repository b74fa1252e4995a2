import CFMTensor

/// The 3D extractor: Point-MAE's encoder on point groups — mini-PointNet
/// tokens, a positional MLP of the group centres added before every block, the first
/// `blocks` transformer blocks, and the final LayerNorm applied to the tier's feature
/// blocks, concatenated.
///
/// Input: neighbourhoods [groups, members, 3] (points minus their centre) and centres
/// [groups, 3]. Output: one feature per group, [groups, featureBlocks.count · dim].
public struct PointMAE: Sendable {
    /// Architecture hyper-parameters; generic so tests can run tiny configurations.
    public struct Config: Sendable, Equatable {
        public var groups: Int, members: Int
        public var hidden1: Int, hidden2: Int, hidden3: Int
        public var dim: Int, heads: Int, depth: Int, mlpHidden: Int, posHidden: Int
        public var eps: Float

        public init(groups: Int, members: Int, hidden1: Int, hidden2: Int, hidden3: Int, dim: Int, heads: Int,
                    depth: Int, mlpHidden: Int, posHidden: Int, eps: Float = 1e-5) {
            (self.groups, self.members, self.hidden1, self.hidden2, self.hidden3) = (groups, members, hidden1, hidden2, hidden3)
            (self.dim, self.heads, self.depth, self.mlpHidden, self.posHidden, self.eps) = (dim, heads, depth, mlpHidden, posHidden, eps)
        }

        /// The released Point-MAE encoder: 1024 groups of 128 points, PointNet 128/256/512,
        /// 384-d, 6 heads, 12 blocks, MLP 1536, positional MLP 3→128→384, eps 1e-5.
        public static let pointMAE = Config(groups: 1024, members: 128, hidden1: 128, hidden2: 256, hidden3: 512,
                                            dim: 384, heads: 6, depth: 12, mlpHidden: 1536, posHidden: 128)
    }

    /// Buffers reused across frames by one caller at a time.
    public struct Workspace: Sendable {
        let pointNet: MiniPointNet.Workspace
        var pos: [Float], posHidden: [Float], x: [Float], normed: [Float]
        var block: TransformerScratch
    }

    public let config: Config
    /// 0-based blocks whose normed outputs form the feature.
    public let featureBlocks: [Int]
    let pointNet: MiniPointNet
    let pos1: Linear, pos2: Linear
    let blocks: [TransformerBlock]
    let norm: LayerNorm

    /// Loads the encoder with the first `blocks` blocks; `featureBlocks` (each < `blocks`)
    /// select the outputs that are normed and concatenated. `precision` applies to the blocks'
    /// projections, mini-PointNet's wide convolutions and the positional MLP's second layer; at
    /// fp32 the blocks run on the packed kernel where the CPU has it (`FP32Kernel.current`), as
    /// the ViT's do.
    public init(weights: SafeTensors, config c: Config, blocks count: Int, featureBlocks: [Int],
                batchNorm: BatchNormMode, precision: Precision = .fp32) throws {
        guard (1...c.depth).contains(count) else { throw ModelError.invalidBlockCount(requested: count, available: c.depth) }
        precondition(featureBlocks.allSatisfy { $0 < count }, "feature blocks \(featureBlocks) beyond \(count) blocks")
        config = c
        self.featureBlocks = featureBlocks
        pointNet = try MiniPointNet(weights, hidden1: c.hidden1, hidden2: c.hidden2, hidden3: c.hidden3,
                                    outChannels: c.dim, mode: batchNorm, precision: precision)
        pos1 = try Linear(weights, "pos_embed.0", in: 3, out: c.posHidden)
        pos2 = try Linear(weights, "pos_embed.2", in: c.posHidden, out: c.dim, precision: precision)
        blocks = try (0..<count).map {
            try TransformerBlock(weights, prefix: "blocks.blocks.\($0)", dim: c.dim, heads: c.heads,
                                 hidden: c.mlpHidden, qkvBias: false, eps: c.eps, precision: precision,
                                 fp32Kernel: .current)
        }
        norm = try LayerNorm(weights, "norm", dim: c.dim, eps: c.eps)
    }

    /// Width of the output feature (D3D): 384 for one feature block, 1152 for three.
    public var featureDim: Int { featureBlocks.count * config.dim }

    public func makeWorkspace() -> Workspace {
        let c = config
        return Workspace(pointNet: pointNet.makeWorkspace(groups: c.groups, members: c.members),
                         pos: [Float](repeating: 0, count: c.groups * c.dim),
                         posHidden: [Float](repeating: 0, count: c.groups * c.posHidden),
                         x: [Float](repeating: 0, count: c.groups * c.dim),
                         normed: [Float](repeating: 0, count: c.groups * c.dim),
                         block: TransformerScratch(tokens: c.groups, dim: c.dim, hidden: c.mlpHidden))
    }

    /// Features [groups, featureDim] of one frame's groups.
    ///
    /// `trace`, when given, receives `tokens` (PointNet output), `pos` and `block.i`
    /// [groups, dim] — for parity tests.
    public func features(neighborhoods: Tensor, centers: Tensor, workspace ws: inout Workspace,
                         trace: ((String, Tensor) -> Void)? = nil) -> Tensor {
        let c = config, g = c.groups
        precondition(centers.shape == [g, 3], "centres must be [\(g), 3], got \(centers.shape)")
        let tokens = pointNet.encode(neighborhoods: neighborhoods, workspace: ws.pointNet)
        trace?("tokens", tokens)
        pos1.apply(rows: g, x: centers.scalars, y: &ws.posHidden)
        geluInPlace(&ws.posHidden, count: g * c.posHidden)
        pos2.apply(rows: g, x: ws.posHidden, y: &ws.pos)
        trace?("pos", Tensor(shape: [g, c.dim], scalars: ws.pos))

        ws.x = tokens.scalars
        var out = [Float](repeating: 0, count: g * featureDim)
        for (i, block) in blocks.enumerated() {
            for j in 0..<(g * c.dim) { ws.x[j] += ws.pos[j] }
            block.forward(&ws.x, scratch: &ws.block)
            trace?("block.\(i)", Tensor(shape: [g, c.dim], scalars: ws.x))
            guard let slot = featureBlocks.firstIndex(of: i) else { continue }
            norm.apply(rows: g, x: ws.x, y: &ws.normed)
            for r in 0..<g {
                for j in 0..<c.dim { out[r * featureDim + slot * c.dim + j] = ws.normed[r * c.dim + j] }
            }
        }
        return Tensor(shape: [g, featureDim], scalars: out)
    }

    /// FLOPs of `features` for one frame.
    public var flops: Double {
        let g = config.groups
        return pointNet.flops(groups: g, members: config.members) + pos1.flops(rows: g) + pos2.flops(rows: g)
            + blocks.reduce(0) { $0 + $1.flops(tokens: g) }
    }
}

extension PointMAE.Config {
    /// Every parameter of the full-depth encoder: the authors' key names (after stripping
    /// `module.` and `MAE_encoder.`) and shapes.
    public var parameterShapes: [(String, [Int])] {
        var shapes: [(String, [Int])] = []
        func conv(_ name: String, _ out: Int, _ inp: Int) { shapes += [("\(name).weight", [out, inp, 1]), ("\(name).bias", [out])] }
        func batchNorm(_ name: String, _ n: Int) {
            shapes += ["weight", "bias", "running_mean", "running_var"].map { ("\(name).\($0)", [n]) }
        }
        conv("encoder.first_conv.0", hidden1, 3)
        batchNorm("encoder.first_conv.1", hidden1)
        conv("encoder.first_conv.3", hidden2, hidden1)
        conv("encoder.second_conv.0", hidden3, 2 * hidden2)
        batchNorm("encoder.second_conv.1", hidden3)
        conv("encoder.second_conv.3", dim, hidden3)
        shapes += [("pos_embed.0.weight", [posHidden, 3]), ("pos_embed.0.bias", [posHidden]),
                   ("pos_embed.2.weight", [dim, posHidden]), ("pos_embed.2.bias", [dim])]
        for i in 0..<depth {
            let p = "blocks.blocks.\(i)"
            shapes += [
                ("\(p).norm1.weight", [dim]), ("\(p).norm1.bias", [dim]),
                ("\(p).attn.qkv.weight", [3 * dim, dim]),
                ("\(p).attn.proj.weight", [dim, dim]), ("\(p).attn.proj.bias", [dim]),
                ("\(p).norm2.weight", [dim]), ("\(p).norm2.bias", [dim]),
                ("\(p).mlp.fc1.weight", [mlpHidden, dim]), ("\(p).mlp.fc1.bias", [mlpHidden]),
                ("\(p).mlp.fc2.weight", [dim, mlpHidden]), ("\(p).mlp.fc2.bias", [dim]),
            ]
        }
        return shapes + [("norm.weight", [dim]), ("norm.bias", [dim])]
    }
}
