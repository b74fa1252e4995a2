/// Multi-head scaled-dot-product self-attention (the core, without projections).
///
/// `qkv` is the fused projection [tokens, 3·dim]: columns `0..<dim` are the queries,
/// `dim..<2·dim` the keys, `2·dim..<3·dim` the values; head `h` uses columns
/// `h·headDim ..< (h+1)·headDim` of each third. For every head,
/// `out[:, head] = softmax(q·kᵀ / √headDim) · v`, written into `out` [tokens, dim].
/// Heads are addressed in place through leading dimensions (no copies) and run in
/// parallel; queries go in blocks of `attentionQueryBlock` rows (softmax is per row, so
/// this is exact), so `scores` — scratch of `attentionScratchCount(tokens:)` values — holds
/// one block's scores per core instead of a whole tokens×tokens matrix.
public func multiHeadAttention(
    tokens: Int, dim: Int, heads: Int,
    qkv: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>
) {
    precondition(dim % heads == 0, "dim \(dim) is not divisible by \(heads) heads")
    let headDim = dim / heads
    let scale = 1 / Float(headDim).squareRoot()
    parallelWorkers(heads) { worker, headRange in
        let s = scores + worker * attentionQueryBlock * tokens
        for h in headRange {
            let q = qkv + h * headDim, k = q + dim, v = q + 2 * dim
            for first in stride(from: 0, to: tokens, by: attentionQueryBlock) {
                let rows = min(attentionQueryBlock, tokens - first)
                gemm(m: rows, n: tokens, k: headDim, alpha: scale,
                     a: q + first * 3 * dim, lda: 3 * dim, b: k, ldb: 3 * dim, transposeB: true,
                     c: s, ldc: tokens)
                softmaxRowsInPlace(s, rows: rows, cols: tokens)
                gemm(m: rows, n: headDim, k: tokens,
                     a: s, lda: tokens, b: v, ldb: 3 * dim,
                     c: out + first * dim + h * headDim, ldc: dim)
            }
        }
    }
}

/// Query rows per block of `multiHeadAttention`: large enough that the per-block GEMMs run
/// at full speed (each packs the head's keys and values again), small enough that a
/// block's scores stay within 1 MB at 1024 tokens.
public let attentionQueryBlock = 256

/// Scratch values `multiHeadAttention` needs for `tokens` tokens (one block of scores per core).
public func attentionScratchCount(tokens: Int) -> Int { cpuCount * attentionQueryBlock * tokens }
