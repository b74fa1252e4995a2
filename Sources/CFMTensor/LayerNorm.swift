import CVectorMath

/// PyTorch's `LayerNorm` over the last dimension: each of `rows` rows of `dim` values is
/// centred, scaled by 1/√(biased variance + eps), then multiplied by `weight` [dim] and
/// shifted by `bias` [dim] (`cfm_layer_norm`, 16 lanes at a time). `x` and `y` may be the
/// same buffer. Rows are split across cores.
public func layerNorm(
    rows: Int, dim: Int, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
    bias: UnsafePointer<Float>, eps: Float, y: UnsafeMutablePointer<Float>, path: VectorPath = .current
) {
    parallelChunks(rows, minimumChunk: max(1, 8192 / max(1, dim))) { range in
        cfm_layer_norm(range.count, dim, x + range.lowerBound * dim, weight, bias, eps, y + range.lowerBound * dim,
                       path.rawValue)
    }
}
