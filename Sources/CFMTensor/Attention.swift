/// Multi-head scaled-dot-product self-attention (the core, without projections).
///
/// `qkv` is the fused projection [tokens, 3·dim]: columns `0..<dim` are the queries,
/// `dim..<2·dim` the keys, `2·dim..<3·dim` the values; head `h` uses columns
/// `h·headDim ..< (h+1)·headDim` of each third. For every head,
/// `out[:, head] = softmax(q·kᵀ / √headDim) · v`, written into `out` [tokens, dim].
/// Heads are addressed in place through leading dimensions (no copies) and run in
/// parallel; `scores` is scratch of `attentionScratchCount(tokens:)` values.
public func multiHeadAttention(
    tokens: Int, dim: Int, heads: Int,
    qkv: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>
) {
    precondition(dim % heads == 0, "dim \(dim) is not divisible by \(heads) heads")
    let headDim = dim / heads
    let scale = 1 / Float(headDim).squareRoot()
    parallelWorkers(heads) { worker, headRange in
        let s = scores + worker * tokens * tokens
        for h in headRange {
            let q = qkv + h * headDim, k = q + dim, v = q + 2 * dim
            gemm(m: tokens, n: tokens, k: headDim, alpha: scale,
                 a: q, lda: 3 * dim, b: k, ldb: 3 * dim, transposeB: true,
                 c: s, ldc: tokens)
            for r in 0..<tokens { softmaxInPlace(s + r * tokens, count: tokens) }
            gemm(m: tokens, n: headDim, k: tokens,
                 a: s, lda: tokens, b: v, ldb: 3 * dim,
                 c: out + h * headDim, ldc: dim)
        }
    }
}

/// Scratch values `multiHeadAttention` needs for `tokens` tokens (one score matrix per core).
public func attentionScratchCount(tokens: Int) -> Int { cpuCount * tokens * tokens }
