import CFMTensor
import Foundation
import Testing

/// Attention over more tokens than one query block: every block (the last one partial)
/// must give what the whole score matrix gives — on narrow heads (the GEMM path) and on
/// 64-wide heads, which take the fused kernel where the CPU has AVX-512 (token counts that
/// leave partial query blocks, query tiles, key tiles and value slices; the last key tile
/// holds 13 keys at 301 tokens and 21 at 213, so the padding keys, which score 0, must stay
/// out of each row's maximum in either half of a tile) and the GEMM path otherwise. Inputs
/// are uniform in ±amplitude; at 8 the logits' standard deviation is ~21, so rows are peaked
/// and many exponentials underflow to 0. The bar grows with amplitude²: Float32 logits of
/// magnitude ~amplitude² carry rounding errors in proportion, which every kernel's outputs
/// inherit (the fused kernel before and after its exponentials took fused multiply-adds:
/// 1.6e-4 at amplitude 8 on the ViT's 785 tokens, both).
@Suite struct AttentionBlockTests {
    static let cases: [(tokens: Int, dim: Int, heads: Int, path: VectorPath, amplitude: Float)] =
        [(2 * attentionQueryBlock + 3, 8, 2, .current, 1), (attentionQueryBlock + 45, 128, 2, .current, 1),
         (attentionQueryBlock + 45, 128, 2, .portable, 1), (7, 64, 1, .current, 1),
         (attentionQueryBlock + 45, 128, 2, .current, 8), (213, 128, 2, .current, 1)]

    @Test(arguments: 0..<cases.count) func queryBlocksMatchTheWholeScoreMatrix(index: Int) {
        let (tokens, dim, heads, path, amplitude) = Self.cases[index], headDim = dim / heads
        var random = SeededRandom(seed: 7)
        let qkv = (0..<(tokens * 3 * dim)).map { _ in random.uniform(-amplitude, amplitude) }
        var out = [Float](repeating: .nan, count: tokens * dim)
        var scores = [Float](repeating: .nan, count: attentionScratchCount(tokens: tokens))
        multiHeadAttention(tokens: tokens, dim: dim, heads: heads, qkv: qkv, out: &out, scores: &scores, path: path)

        var worst = 0.0
        for h in 0..<heads {
            for i in 0..<tokens {
                // softmax(q_i·K / √d)·V in Float64, one query row at a time.
                let logits = (0..<tokens).map { j in
                    (0..<headDim).reduce(0.0) {
                        $0 + Double(qkv[i * 3 * dim + h * headDim + $1]) * Double(qkv[j * 3 * dim + dim + h * headDim + $1])
                    } / Double(headDim).squareRoot()
                }
                let top = logits.max()!, weights = logits.map { exp($0 - top) }, total = weights.reduce(0, +)
                for c in 0..<headDim {
                    let expected = (0..<tokens).reduce(0.0) { $0 + weights[$1] * Double(qkv[$1 * 3 * dim + 2 * dim + h * headDim + c]) } / total
                    worst = max(worst, abs(expected - Double(out[i * dim + h * headDim + c])))
                }
            }
        }
        #expect(worst < 1e-5 * Double(amplitude * amplitude), "largest difference \(worst) (path \(path), head width \(headDim), amplitude \(amplitude))")
    }

    /// Every logit −200 (queries −5 and keys 5 in every column: −5 · 5 · 64 / 8): softmax is
    /// uniform, so each output row is the mean of v. A kernel that let the padding keys (score 0)
    /// into a row's maximum would underflow every exponential to 0 and divide by 0.
    @Test(arguments: [213, 301]) func uniformlyNegativeLogitsAverageTheValues(tokens: Int) {
        let dim = 128, heads = 2
        var random = SeededRandom(seed: 3)
        var qkv = [Float](repeating: 0, count: tokens * 3 * dim)
        for i in 0..<tokens {
            for c in 0..<dim {
                qkv[i * 3 * dim + c] = -5
                qkv[i * 3 * dim + dim + c] = 5
                qkv[i * 3 * dim + 2 * dim + c] = random.uniform(-1, 1)
            }
        }
        var out = [Float](repeating: .nan, count: tokens * dim)
        var scores = [Float](repeating: .nan, count: attentionScratchCount(tokens: tokens))
        multiHeadAttention(tokens: tokens, dim: dim, heads: heads, qkv: qkv, out: &out, scores: &scores)

        var worst = 0.0
        for c in 0..<dim {
            let mean = (0..<tokens).reduce(0.0) { $0 + Double(qkv[$1 * 3 * dim + 2 * dim + c]) } / Double(tokens)
            for i in 0..<tokens {
                let difference = abs(mean - Double(out[i * dim + c]))
                if !(difference <= worst) { worst = difference }  // NaN too
            }
        }
        #expect(worst < 1e-5, "largest difference \(worst) at \(tokens) tokens")
    }
}
