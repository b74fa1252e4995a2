/// PyTorch's `LayerNorm` over the last dimension: each of `rows` rows of `dim` values is
/// centred, scaled by 1/√(biased variance + eps), then multiplied by `weight` and
/// shifted by `bias`. `x` and `y` may be the same buffer.
public func layerNorm(
    rows: Int, dim: Int, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
    bias: UnsafePointer<Float>, eps: Float, y: UnsafeMutablePointer<Float>
) {
    parallelChunks(rows, minimumChunk: max(1, 8192 / max(1, dim))) { range in
        for r in range {
            let xr = x + r * dim, yr = y + r * dim
            var sum: Float = 0
            for j in 0..<dim { sum += xr[j] }
            let mean = sum / Float(dim)
            var squares: Float = 0
            for j in 0..<dim {
                let d = xr[j] - mean
                squares += d * d
            }
            let inv = 1 / (squares / Float(dim) + eps).squareRoot()
            for j in 0..<dim { yr[j] = (xr[j] - mean) * inv * weight[j] + bias[j] }
        }
    }
}
