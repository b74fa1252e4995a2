import CFMTensor

/// The exact k nearest points of every query point (Euclidean), e.g. the 128-point groups
/// around the 1024 FPS centres of Point-MAE.
///
/// Each row lists its k points by ascending squared distance, ties broken by the lower point
/// index. Distances are ranked exactly (Float64 (p − q)² of the Float32 inputs; see
/// `searchNearest`), so the selected set never depends on GEMM rounding.
public struct NearestNeighbours: Sendable, Equatable {
    /// Number of queries M.
    public let queryCount: Int
    /// Neighbours per query.
    public let k: Int
    /// [M, k] row-major indices into the searched points.
    public let indices: [Int]
    /// [M, k] row-major squared distances in m² (exact, rounded to Float32: +∞ beyond its
    /// range, i.e. for points more than ~1.8e19 m apart).
    public let squaredDistances: [Float]

    /// Searches, for each of `queries` [M, 3], its `k` nearest of `points` [N, 3] (metres,
    /// finite, of any magnitude). Needs 1 ≤ k ≤ N.
    public init(of queries: Tensor, in points: Tensor, k: Int) throws(GeometryError) {
        let m = try pointCount(of: queries, argument: "queries")
        let n = try pointCount(of: points, argument: "points")
        guard k >= 1 else { throw .invalidParameter(name: "k", value: "\(k)", requirement: "at least 1") }
        guard n >= k else { throw .tooFewPoints(operation: "\(k)-nearest-neighbour search", required: k, available: n) }
        var indices = [Int](repeating: 0, count: m * k)
        var squaredDistances = [Float](repeating: 0, count: m * k)
        if m > 0 {
            queries.withUnsafeBufferPointer { q in
                points.withUnsafeBufferPointer { p in
                    indices.withUnsafeMutableBufferPointer { i in
                        squaredDistances.withUnsafeMutableBufferPointer { d in
                            searchNearest(queries: q.baseAddress!, queryCount: m, points: p.baseAddress!, pointCount: n,
                                          k: k, indices: i.baseAddress!, squaredDistances: d.baseAddress!)
                        }
                    }
                }
            }
        }
        queryCount = m
        self.k = k
        self.indices = indices
        self.squaredDistances = squaredDistances
    }

    /// The neighbourhoods relative to their query: [M, k, 3] with entry (i, j) = point − query
    /// (Float32), for the same `queries` and `points` the search ran on.
    public func neighbourhoods(of queries: Tensor, in points: Tensor) throws(GeometryError) -> Tensor {
        guard try pointCount(of: queries, argument: "queries") == queryCount else {
            throw .shapeMismatch(argument: "queries", expected: "[\(queryCount), 3]", found: queries.shape)
        }
        let n = try pointCount(of: points, argument: "points")
        guard indices.allSatisfy({ $0 < n }) else {
            throw .shapeMismatch(argument: "points", expected: "[N, 3] with N > \(indices.max() ?? 0)", found: points.shape)
        }
        var groups = Tensor(shape: [queryCount, k, 3])
        groups.withUnsafeMutableBufferPointer { g in
            queries.withUnsafeBufferPointer { q in
                points.withUnsafeBufferPointer { p in
                    for row in 0..<queryCount * k {
                        let point = 3 * indices[row], query = 3 * (row / k)
                        for axis in 0..<3 { g[3 * row + axis] = p[point + axis] - q[query + axis] }
                    }
                }
            }
        }
        return groups
    }
}
