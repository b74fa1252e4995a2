import CVectorMath

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
///
/// With AVX-512 and 64-wide heads (the ViT's and Point-MAE's) each head runs in one fused
/// kernel, `cfm_attention_head`: keys transposed and values packed once per head (the GEMM
/// library packs them again for every block), register-tiled products around the exponentials
/// (each row's maximum kept while its scores are stored, so the exponentials start without a
/// pass over the row), the softmax's division applied to the 64 outputs of a row instead of
/// its 785 probabilities. Measured on this machine class (CPU time, min of 15): ViT 785 tokens
/// × 12 heads 20.1 against 22.8 ms for the two GEMMs per block, Point-MAE 1024 × 6 heads 15.7
/// against 18.8 ms; the second kernel against that first one, one core, min of 40 in three
/// alternated rounds: 16.9–17.7 against 20.5–21.8 ms for the ViT's 12 heads; the present one
/// (larger register tiles, the row maxima, 96-row blocks) against the second, the same way
/// (`tools/gemm-bench/attention.sh main 3 40`, 2026-12-01, the other core busy): ViT 13.7–14.1
/// against 14.8–15.4 ms (0.91–0.93×; 0.94–0.96× in an earlier, quieter run), Point-MAE
/// 11.1–11.4 against 12.3–12.6 ms (0.91×), with the same bits. Otherwise (no AVX-512, other
/// head widths) every block is two GEMMs around the row softmax.
public func multiHeadAttention(
    tokens: Int, dim: Int, heads: Int,
    qkv: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>,
    path: VectorPath = .current
) {
    precondition(dim % heads == 0, "dim \(dim) is not divisible by \(heads) heads")
    let headDim = dim / heads
    let scale = 1 / Float(headDim).squareRoot()
    let perWorker = attentionScratchCount(tokens: tokens) / cpuCount
    parallelWorkers(heads) { worker, headRange in
        let s = scores + worker * perWorker
        for h in headRange {
            let q = qkv + h * headDim, k = q + dim, v = q + 2 * dim
            if path == .avx512 && headDim == Int(CFM_ATTENTION_HEAD_DIM) {
                cfm_attention_head(tokens, scale, q, 3 * dim, k, 3 * dim, v, 3 * dim, out + h * headDim, dim, s)
                continue
            }
            for first in stride(from: 0, to: tokens, by: attentionQueryBlock) {
                let rows = min(attentionQueryBlock, tokens - first)
                gemm(m: rows, n: tokens, k: headDim, alpha: scale,
                     a: q + first * 3 * dim, lda: 3 * dim, b: k, ldb: 3 * dim, transposeB: true,
                     c: s, ldc: tokens)
                softmaxRowsInPlace(s, rows: rows, cols: tokens, path: path)
                gemm(m: rows, n: headDim, k: tokens,
                     a: s, lda: tokens, b: v, ldb: 3 * dim,
                     c: out + first * dim + h * headDim, ldc: dim)
            }
        }
    }
}

/// Query rows per block of `multiHeadAttention`'s GEMM path: large enough that the per-block
/// products run at full speed, small enough that a block's scores stay within 1 MB at 1024
/// tokens. (The fused kernel blocks its queries by its own measure.)
public let attentionQueryBlock = 256

/// Scratch values `multiHeadAttention` needs for `tokens` tokens: per core, one block of
/// scores, and for the fused kernel the transposed keys and a block of outputs too.
public func attentionScratchCount(tokens: Int) -> Int {
    cpuCount * max(attentionQueryBlock * tokens, cfm_attention_scratch_count(tokens))
}
