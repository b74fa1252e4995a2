import CFMTensor

/// Buffers one transformer block needs for a given token count; allocated once per model
/// and reused for every block and every frame.
public struct TransformerScratch: Sendable {
    public let tokens: Int
    var normed: [Float], qkv: [Float], scores: [Float], attended: [Float], hidden: [Float]

    public init(tokens: Int, dim: Int, hidden: Int) {
        self.tokens = tokens
        normed = [Float](repeating: 0, count: tokens * dim)
        qkv = [Float](repeating: 0, count: tokens * 3 * dim)
        scores = [Float](repeating: 0, count: attentionScratchCount(tokens: tokens))
        attended = [Float](repeating: 0, count: tokens * dim)
        self.hidden = [Float](repeating: 0, count: tokens * hidden)
    }
}

/// The pre-norm transformer block shared by DINO's ViT and Point-MAE:
/// `x = x + proj(attn(LN1(x)))`, then `x = x + fc2(GELU(fc1(LN2(x))))`.
/// Keys under `prefix`: `norm1 attn.qkv attn.proj norm2 mlp.fc1 mlp.fc2` (timm names).
/// `precision` applies to the four projections; attention's own products stay fp32.
public struct TransformerBlock: Sendable {
    public let dim: Int, heads: Int
    let norm1: LayerNorm, qkv: Linear, proj: Linear, norm2: LayerNorm, fc1: Linear, fc2: Linear

    public init(_ weights: SafeTensors, prefix: String, dim: Int, heads: Int, hidden: Int,
                qkvBias: Bool, eps: Float, precision: Precision = .fp32) throws {
        self.dim = dim
        self.heads = heads
        norm1 = try LayerNorm(weights, "\(prefix).norm1", dim: dim, eps: eps)
        qkv = try Linear(weights, "\(prefix).attn.qkv", in: dim, out: 3 * dim, hasBias: qkvBias, precision: precision)
        proj = try Linear(weights, "\(prefix).attn.proj", in: dim, out: dim, precision: precision)
        norm2 = try LayerNorm(weights, "\(prefix).norm2", dim: dim, eps: eps)
        fc1 = try Linear(weights, "\(prefix).mlp.fc1", in: dim, out: hidden, precision: precision)
        fc2 = try Linear(weights, "\(prefix).mlp.fc2", in: hidden, out: dim, precision: precision)
    }

    /// Runs the block in place on the token matrix `x` [scratch.tokens, dim].
    public func forward(_ x: inout [Float], scratch s: inout TransformerScratch) {
        let n = s.tokens
        norm1.apply(rows: n, x: x, y: &s.normed)
        qkv.apply(rows: n, x: s.normed, y: &s.qkv)
        multiHeadAttention(tokens: n, dim: dim, heads: heads, qkv: s.qkv, out: &s.attended, scores: &s.scores)
        proj.apply(rows: n, x: s.attended, y: &x, accumulate: true)
        norm2.apply(rows: n, x: x, y: &s.normed)
        fc1.apply(rows: n, x: s.normed, y: &s.hidden)
        geluInPlace(&s.hidden, count: n * fc1.outFeatures)
        fc2.apply(rows: n, x: s.hidden, y: &x, accumulate: true)
    }

    /// FLOPs of one forward pass over `tokens` tokens (GEMMs only).
    public func flops(tokens: Int) -> Double {
        qkv.flops(rows: tokens) + proj.flops(rows: tokens) + fc1.flops(rows: tokens) + fc2.flops(rows: tokens)
            + 4 * Double(tokens) * Double(tokens) * Double(dim)
    }
}
