/// Multi-head scaled-dot-product self-attention (the core, without projections).
///
/// `qkv` is the fused projection [tokens, 3·dim]: columns `0..<dim` are the queries,
/// `dim..<2·dim` the keys, `2·dim..<3·dim` the values; head `h` uses columns
/// `h·headDim ..< (h+1)·headDim` of each third. For every head,
/// `out[:, head] = softmax(q·kᵀ / √headDim) · v`, written into `out` [tokens, dim].
/// Heads are addressed in place through leading dimensions: no copies.
/// `scores` is scratch space of at least tokens × tokens values.
public func multiHeadAttention(
    tokens: Int, dim: Int, heads: Int,
    qkv: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>
) {
    precondition(dim % heads == 0, "dim \(dim) is not divisible by \(heads) heads")
    let headDim = dim / heads
    let scale = 1 / Float(headDim).squareRoot()
    for h in 0..<heads {
        let q = qkv + h * headDim, k = q + dim, v = q + 2 * dim
        gemm(m: tokens, n: tokens, k: headDim, alpha: scale,
             a: q, lda: 3 * dim, b: k, ldb: 3 * dim, transposeB: true,
             c: scores, ldc: tokens)
        softmaxRowsInPlace(scores, rows: tokens, cols: tokens)
        gemm(m: tokens, n: headDim, k: tokens,
             a: scores, lda: tokens, b: v, ldb: 3 * dim,
             c: out + h * headDim, ldc: dim)
    }
}
