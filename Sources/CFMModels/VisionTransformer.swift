import CFMTensor

/// The 2D extractor: DINO ViT (timm `vit_base_patch8_224.dino` at full size), pruned to its
/// first `blocks` blocks, followed by the final LayerNorm.
///
/// Input: a normalised image [channels, imageSize, imageSize]. Output: patch features
/// [dim, grid, grid] (grid = imageSize / patchSize; cls token dropped), optionally
/// upsampled bilinearly to [dim, imageSize, imageSize].
public struct VisionTransformer: Sendable {
    /// Architecture hyper-parameters; generic so tests can run tiny configurations.
    public struct Config: Sendable, Equatable {
        public var imageSize: Int, patchSize: Int, channels: Int
        public var dim: Int, heads: Int, depth: Int, mlpHidden: Int
        public var eps: Float

        public init(imageSize: Int, patchSize: Int, channels: Int = 3, dim: Int, heads: Int,
                    depth: Int, mlpHidden: Int, eps: Float = 1e-6) {
            self.imageSize = imageSize; self.patchSize = patchSize; self.channels = channels
            self.dim = dim; self.heads = heads; self.depth = depth; self.mlpHidden = mlpHidden; self.eps = eps
        }

        /// DINO ViT-B/8 at 224×224: 768-d, 12 heads, 12 blocks, MLP 3072, LayerNorm eps 1e-6.
        public static let dinoViTB8 = Config(imageSize: 224, patchSize: 8, dim: 768, heads: 12, depth: 12, mlpHidden: 3072)

        /// Patches per side (28 for ViT-B/8 at 224).
        public var grid: Int { imageSize / patchSize }
        /// Tokens including the cls token (785).
        public var tokens: Int { grid * grid + 1 }
    }

    /// Buffers reused across frames by one caller at a time.
    public struct Workspace: Sendable {
        var patches: [Float], x: [Float], block: TransformerScratch
    }

    public let config: Config
    let patchEmbed: Linear
    let clsToken: [Float], posEmbed: [Float]
    let blocks: [TransformerBlock]
    let norm: LayerNorm

    /// Loads the first `blocks` blocks (and the embeddings and final norm) from `weights`,
    /// checking every shape against `config`. Later blocks are not read. `precision` applies
    /// to the blocks' projections (the patch embedding, 2 % of the FLOPs, stays fp32); at fp32 they
    /// run on the packed kernel where the CPU has it (`FP32Kernel.current`: measured faster than
    /// OpenBLAS on the ViT's shapes, tools/gemm-bench/README.md).
    public init(weights: SafeTensors, config: Config, blocks count: Int, precision: Precision = .fp32) throws {
        precondition(config.imageSize % config.patchSize == 0, "image size must be a multiple of the patch size")
        guard (1...config.depth).contains(count) else {
            throw ModelError.invalidBlockCount(requested: count, available: config.depth)
        }
        self.config = config
        let c = config
        patchEmbed = try Linear(weights, "patch_embed.proj", in: c.channels * c.patchSize * c.patchSize, out: c.dim,
                                weightShape: [c.dim, c.channels, c.patchSize, c.patchSize])
        clsToken = try weights.tensor("cls_token", shape: [1, 1, c.dim]).scalars
        posEmbed = try weights.tensor("pos_embed", shape: [1, c.tokens, c.dim]).scalars
        self.blocks = try (0..<count).map {
            try TransformerBlock(weights, prefix: "blocks.\($0)", dim: c.dim, heads: c.heads,
                                 hidden: c.mlpHidden, qkvBias: true, eps: c.eps, precision: precision,
                                 fp32Kernel: .current)
        }
        norm = try LayerNorm(weights, "norm", dim: c.dim, eps: c.eps)
    }

    /// Number of transformer blocks that run.
    public var blockCount: Int { blocks.count }

    public func makeWorkspace() -> Workspace {
        let c = config
        return Workspace(patches: [Float](repeating: 0, count: c.grid * c.grid * c.channels * c.patchSize * c.patchSize),
                         x: [Float](repeating: 0, count: c.tokens * c.dim),
                         block: TransformerScratch(tokens: c.tokens, dim: c.dim, hidden: c.mlpHidden))
    }

    /// Patch features [dim, grid, grid] of a normalised `image` [channels, imageSize, imageSize].
    public func features(image: Tensor, workspace ws: inout Workspace,
                         trace: ((String, Tensor) -> Void)? = nil) -> Tensor {
        Self.channelMajor(patchTokens(image: image, workspace: &ws, trace: trace), grid: config.grid)
    }

    /// Patch tokens [grid², dim] (token = row · grid + col, cls dropped) of a normalised
    /// `image` [channels, imageSize, imageSize], after the final norm.
    ///
    /// `trace`, when given, receives each stage's token matrix (`patch_embed` [grid², dim],
    /// `embed` and `block.i` [tokens, dim], `norm` [tokens, dim]) — for parity tests.
    public func patchTokens(image: Tensor, workspace ws: inout Workspace,
                            trace: ((String, Tensor) -> Void)? = nil) -> Tensor {
        let c = config
        precondition(image.shape == [c.channels, c.imageSize, c.imageSize],
                     "ViT input must be [\(c.channels), \(c.imageSize), \(c.imageSize)], got \(image.shape)")
        let d = c.dim, n = c.tokens
        ws.x.withUnsafeMutableBufferPointer { x in
            patchEmbedding(image: image.scalars, channels: c.channels, height: c.imageSize, width: c.imageSize,
                           patch: c.patchSize, weight: patchEmbed.weight, bias: patchEmbed.bias!, outChannels: d,
                           patches: &ws.patches, out: x.baseAddress! + d)
        }
        trace?("patch_embed", Tensor(shape: [n - 1, d], scalars: Array(ws.x[d...])))
        ws.x.withUnsafeMutableBufferPointer { x in
            let x = x.baseAddress!
            x.update(from: clsToken, count: d)
            // After the patch embedding's bias, as timm adds it (y + 1·pos is y + pos exactly).
            posEmbed.withUnsafeBufferPointer { pos in
                parallelChunks(n * d, minimumChunk: 65536) { range in
                    axpy(count: range.count, 1, pos.baseAddress! + range.lowerBound, x + range.lowerBound)
                }
            }
        }
        trace?("embed", Tensor(shape: [n, d], scalars: ws.x))
        for (i, block) in blocks.enumerated() {
            block.forward(&ws.x, scratch: &ws.block)
            trace?("block.\(i)", Tensor(shape: [n, d], scalars: ws.x))
        }
        // The final norm writes the patch tokens straight into the result (the cls row is
        // normalised only for a trace).
        let tokens = [Float](unsafeUninitializedCapacity: (n - 1) * d) { out, initialized in
            ws.x.withUnsafeBufferPointer { x in norm.apply(rows: n - 1, x: x.baseAddress! + d, y: out.baseAddress!) }
            initialized = (n - 1) * d
        }
        if let trace {
            var cls = [Float](repeating: 0, count: d)
            norm.apply(rows: 1, x: ws.x, y: &cls)
            trace("norm", Tensor(shape: [n, d], scalars: cls + tokens))
        }
        return Tensor(shape: [n - 1, d], scalars: tokens)
    }

    /// Tokens [grid², dim] → channel planes [dim, grid, grid].
    public static func channelMajor(_ tokens: Tensor, grid: Int) -> Tensor {
        let (n, d) = (tokens.shape[0], tokens.shape[1])
        precondition(n == grid * grid, "\(n) tokens do not form a \(grid)×\(grid) grid")
        var out = [Float](repeating: 0, count: n * d)
        for t in 0..<n {
            for j in 0..<d { out[j * n + t] = tokens.scalars[t * d + j] }
        }
        return Tensor(shape: [d, grid, grid], scalars: out)
    }

    /// Bilinear upsampling of `features` [dim, grid, grid] to the input size [dim, S, S]
    /// (PyTorch `align_corners=False`), the per-pixel 2D feature map.
    public func upsample(_ features: Tensor) -> Tensor {
        let c = config
        var out = Tensor(shape: [c.dim, c.imageSize, c.imageSize])
        out.withUnsafeMutableBufferPointer { o in
            bilinearResize(features.scalars, channels: c.dim, height: c.grid, width: c.grid,
                           outHeight: c.imageSize, outWidth: c.imageSize, out: o.baseAddress!)
        }
        return out
    }

    /// FLOPs (2 · multiply-adds) of `features` for one image.
    public var flops: Double {
        patchEmbed.flops(rows: config.grid * config.grid) + blocks.reduce(0) { $0 + $1.flops(tokens: config.tokens) }
    }
}
