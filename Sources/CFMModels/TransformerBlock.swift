import CFMTensor

/// Buffers one transformer block needs for a given token count; allocated once per model
/// and reused for every block and every frame (stable addresses: workers write their rows).
public struct TransformerScratch: Sendable {
    public let tokens: Int
    let normed: ScratchBuffer<Float>, qkv: ScratchBuffer<Float>, scores: ScratchBuffer<Float>
    let attended: ScratchBuffer<Float>, hidden: ScratchBuffer<Float>

    public init(tokens: Int, dim: Int, hidden: Int) {
        self.tokens = tokens
        normed = ScratchBuffer(count: tokens * dim)
        qkv = ScratchBuffer(count: tokens * 3 * dim)
        scores = ScratchBuffer(count: attentionScratchCount(tokens: tokens))
        attended = ScratchBuffer(count: tokens * dim)
        self.hidden = ScratchBuffer(count: tokens * hidden)
    }
}

/// The pre-norm transformer block shared by DINO's ViT and Point-MAE:
/// `x = x + proj(attn(LN1(x)))`, then `x = x + fc2(GELU(fc1(LN2(x))))`.
/// Keys under `prefix`: `norm1 attn.qkv attn.proj norm2 mlp.fc1 mlp.fc2` (timm names).
/// `precision` applies to the four projections; attention's own products stay fp32. At fp32,
/// `fp32Kernel` picks their GEMM: `.packed` (weights packed once at load, bias, residual and
/// GELU in the kernel's epilogue) or `.blas` (OpenBLAS, a GELU pass of its own); each model
/// passes the one measured faster on its shapes.
public struct TransformerBlock: Sendable {
    public let dim: Int, heads: Int
    let norm1: LayerNorm, qkv: Linear, proj: Linear, norm2: LayerNorm, fc1: Linear, fc2: Linear

    public init(_ weights: SafeTensors, prefix: String, dim: Int, heads: Int, hidden: Int,
                qkvBias: Bool, eps: Float, precision: Precision = .fp32, fp32Kernel: FP32Kernel = .blas) throws {
        self.dim = dim
        self.heads = heads
        norm1 = try LayerNorm(weights, "\(prefix).norm1", dim: dim, eps: eps)
        qkv = try Linear(weights, "\(prefix).attn.qkv", in: dim, out: 3 * dim, hasBias: qkvBias, precision: precision,
                         fp32Kernel: fp32Kernel)
        proj = try Linear(weights, "\(prefix).attn.proj", in: dim, out: dim, precision: precision, fp32Kernel: fp32Kernel)
        norm2 = try LayerNorm(weights, "\(prefix).norm2", dim: dim, eps: eps)
        fc1 = try Linear(weights, "\(prefix).mlp.fc1", in: dim, out: hidden, precision: precision, fp32Kernel: fp32Kernel)
        fc2 = try Linear(weights, "\(prefix).mlp.fc2", in: hidden, out: dim, precision: precision, fp32Kernel: fp32Kernel)
    }

    /// Runs the block in place on the token matrix `x` [scratch.tokens, dim].
    ///
    /// Everything but attention's core works row by row, so the block hands work to the cores
    /// three times instead of eight: LN1 and qkv on each core's rows, the heads, then proj (+ x),
    /// LN2, fc1 with its GELU and fc2 (+ x) on each core's rows (the kernels run inline inside a chunk).
    /// The row chunks are the ones each layer would choose alone (`linear`'s), so the results
    /// are the same bits.
    public func forward(_ x: inout [Float], scratch s: inout TransformerScratch) {
        let n = s.tokens, d = dim, h = fc1.outFeatures
        let normed = s.normed.base, qkvOut = s.qkv.base, attended = s.attended.base, hidden = s.hidden.base
        x.withUnsafeMutableBufferPointer { x in
            let x = x.baseAddress!
            parallelChunks(n, minimumChunk: 32) { rows in
                let first = rows.lowerBound
                norm1.apply(rows: rows.count, x: x + first * d, y: normed + first * d)
                qkv.apply(rows: rows.count, x: normed + first * d, y: qkvOut + first * 3 * d)
            }
            multiHeadAttention(tokens: n, dim: d, heads: heads, qkv: qkvOut, out: attended, scores: s.scores.base)
            parallelChunks(n, minimumChunk: 32) { rows in
                let first = rows.lowerBound, xRows = x + first * d, hiddenRows = hidden + first * h
                proj.apply(rows: rows.count, x: attended + first * d, y: xRows, accumulate: true)
                norm2.apply(rows: rows.count, x: xRows, y: normed + first * d)
                fc1.applyGELU(rows: rows.count, x: normed + first * d, y: hiddenRows)
                fc2.apply(rows: rows.count, x: hiddenRows, y: xRows, accumulate: true)
            }
        }
    }

    /// FLOPs of one forward pass over `tokens` tokens (GEMMs only).
    public func flops(tokens: Int) -> Double {
        qkv.flops(rows: tokens) + proj.flops(rows: tokens) + fc1.flops(rows: tokens) + fc2.flops(rows: tokens)
            + 4 * Double(tokens) * Double(tokens) * Double(dim)
    }
}
