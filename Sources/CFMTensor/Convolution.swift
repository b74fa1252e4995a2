/// A convolution whose kernel equals its stride (ViT patch embedding), as one GEMM.
///
/// `image` [channels, height, width] is cut into patch×patch tiles; `patches` (scratch,
/// tokens × channels·patch² values) receives them in the weight's (c, ky, kx) order, and
/// `out` [tokens, outChannels] gets `patches · Wᵀ + bias`, token = row · (width/patch) + col.
/// `weight` is PyTorch's Conv2d weight [outChannels, channels, patch, patch].
/// Tokens are split across cores once: each chunk cuts its own tiles and runs its rows of
/// the GEMM (`linear` runs inline inside a chunk), so the cutting is not a serial pass.
public func patchEmbedding(
    image: UnsafePointer<Float>, channels: Int, height: Int, width: Int, patch: Int,
    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, outChannels: Int,
    patches: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>
) {
    precondition(height % patch == 0 && width % patch == 0,
                 "image \(height)×\(width) is not a multiple of the patch size \(patch)")
    let cols = width / patch, tokens = height / patch * cols
    let patchLength = channels * patch * patch
    parallelChunks(tokens, minimumChunk: 32) { range in
        for token in range {
            let (r, col) = token.quotientAndRemainder(dividingBy: cols)
            var dst = patches + token * patchLength
            for c in 0..<channels {
                for ky in 0..<patch {
                    let src = image + (c * height + r * patch + ky) * width + col * patch
                    dst.update(from: src, count: patch)
                    dst += patch
                }
            }
        }
        linear(rows: range.count, inFeatures: patchLength, outFeatures: outChannels,
               x: patches + range.lowerBound * patchLength, weight: weight, bias: bias,
               y: out + range.lowerBound * outChannels)
    }
}

/// Maximum over the middle axis: input [groups, members, channels] → out [groups, channels]
/// (the symmetric pooling of PointNet over the points of each group).
public func maxOverMembers(
    _ x: UnsafePointer<Float>, groups: Int, members: Int, channels: Int, out: UnsafeMutablePointer<Float>
) {
    parallelChunks(groups, minimumChunk: max(1, 16384 / max(1, members * channels))) { range in
        for g in range {
            let o = out + g * channels
            let base = x + g * members * channels
            o.update(from: base, count: channels)
            for m in 1..<max(1, members) {
                let row = base + m * channels
                for c in 0..<channels { o[c] = row[c] > o[c] ? row[c] : o[c] }  // a select: vectorises
            }
        }
    }
}
