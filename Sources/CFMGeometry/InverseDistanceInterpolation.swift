import CFMTensor

/// Inverse-distance blending of per-centre values onto points, as PointNet++ feature
/// propagation does it: each point takes its 3 nearest centres (exact, ties
/// to the lower centre index) with weights w_i = 1 / (d_i² + 1e-8), d_i² the squared
/// distance in m², normalised to sum 1. A squared distance beyond Float32's range (+∞, only
/// for coordinates beyond ~1e19 m) weighs 0; when all three are, the nearest centre takes
/// the whole weight.
public struct InverseDistanceInterpolation: Sendable, Equatable {
    /// Number of points N.
    public let pointCount: Int
    /// Number of centres M the blend draws from.
    public let centreCount: Int
    /// [N, 3] row-major centre indices, nearest first.
    public let indices: [Int]
    /// [N, 3] row-major weights, each row summing to 1.
    public let weights: [Float]

    /// Neighbours blended per point.
    public static let neighbours = 3

    /// Finds the 3 nearest of `centres` [M, 3] (M ≥ 3) for every one of `points` [N, 3], metres.
    public init(points: Tensor, centres: Tensor) throws(GeometryError) {
        let k = Self.neighbours
        let nearest = try NearestNeighbours(of: points, in: centres, k: k)
        var weights = [Float](repeating: 0, count: nearest.indices.count)
        let d = nearest.squaredDistances
        for row in 0..<nearest.queryCount {
            let inverse = 1 / (SIMD3(Double(d[row * k]), Double(d[row * k + 1]), Double(d[row * k + 2])) + 1e-8)
            let total = inverse.sum()
            let normalised = total > 0 ? inverse / total : SIMD3(1, 0, 0)
            for j in 0..<k { weights[row * k + j] = Float(normalised[j]) }
        }
        pointCount = nearest.queryCount
        centreCount = centres.shape[0]
        indices = nearest.indices
        self.weights = weights
    }

    /// Blends per-centre rows `features` [M, D] onto the points: [N, D], row n =
    /// Σ_i weights[n, i] · features[indices[n, i]].
    public func interpolate(_ features: Tensor) throws(GeometryError) -> Tensor {
        guard features.shape.count == 2, features.shape[0] == centreCount else {
            throw .shapeMismatch(argument: "centre features", expected: "[\(centreCount), D]", found: features.shape)
        }
        let k = Self.neighbours, dim = features.shape[1]
        guard pointCount * dim > 0 else { return Tensor(shape: [pointCount, dim]) }
        // Every element is written below, so the (large) result skips zero-filling.
        let blended = [Float](unsafeUninitializedCapacity: pointCount * dim) { out, initialized in
            features.withUnsafeBufferPointer { f in
                let source = f.baseAddress!, target = out.baseAddress!
                parallelChunks(pointCount, minimumChunk: max(1, 65536 / max(1, dim))) { rows in
                    for n in rows {
                        let dst = target + n * dim
                        let a = source + indices[n * k] * dim, wa = weights[n * k]
                        let b = source + indices[n * k + 1] * dim, wb = weights[n * k + 1]
                        let c = source + indices[n * k + 2] * dim, wc = weights[n * k + 2]
                        for j in 0..<dim { dst[j] = wa * a[j] + wb * b[j] + wc * c[j] }
                    }
                }
            }
            initialized = pointCount * dim
        }
        return Tensor(shape: [pointCount, dim], scalars: blended)
    }
}
