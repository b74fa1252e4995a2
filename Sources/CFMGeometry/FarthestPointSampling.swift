import CFMTensor

/// The result of farthest point sampling.
public struct FarthestPointSample: Sendable, Equatable {
    /// Indices of the chosen points into the input, in the order chosen; [count].
    public let indices: [Int]
    /// The chosen points, [count, 3] metres.
    public let centres: Tensor
}

/// Farthest point sampling as the pointnet2 CUDA kernel that Point-MAE uses does it.
///
/// Starts from point 0; every further step takes the point with the largest squared
/// distance (Float32, `dx·dx + dy·dy + dz·dz`) to the points chosen so far, each distance
/// starting at 1e10. Points with |p|² ≤ 1e-3 (within 3.2 cm of the sensor origin) are never
/// taken after the first step and their distances are never updated. Ties go to the lowest
/// index. Like the kernel, once every eligible point has distance 0 the lowest-index eligible
/// point is repeated, and with no eligible point at all point 0 is.
///
/// - Parameters:
///   - points: [N, 3] coordinates in metres, finite, N ≥ 1 when `count` > 0.
///   - count: number of centres (1024 for Point-MAE); may exceed N (centres then repeat).
/// - Complexity: O(N · count), vectorised over struct-of-arrays columns and split across cores.
public func farthestPointSampling(_ points: Tensor, count: Int) throws(GeometryError) -> FarthestPointSample {
    let n = try pointCount(of: points, argument: "points")
    guard count >= 0 else {
        throw .invalidParameter(name: "count", value: "\(count)", requirement: "non-negative")
    }
    guard count == 0 || n >= 1 else {
        throw .tooFewPoints(operation: "farthest point sampling", required: 1, available: n)
    }
    var indices = [Int](repeating: 0, count: count)
    if count > 1 {
        points.withUnsafeBufferPointer { p in
            farthestPointIndices(p.baseAddress!, pointCount: n, into: &indices)
        }
    }
    var centres = Tensor(shape: [count, 3])
    for (i, index) in indices.enumerated() {
        for axis in 0..<3 { centres.scalars[3 * i + axis] = points.scalars[3 * index + axis] }
    }
    return FarthestPointSample(indices: indices, centres: centres)
}

/// Fills `indices[1...]` (indices[0] = 0) for `n` points stored [n, 3] at `points`.
private func farthestPointIndices(_ points: UnsafePointer<Float>, pointCount n: Int, into indices: inout [Int]) {
    typealias Vector = PointColumns.Vector
    typealias Lanes = SIMD16<Int32>
    let lanes = PointColumns.lanes
    let columns = PointColumns(points, count: n)
    // Distance to the chosen set; −1 marks points that are never candidates (too close to
    // the origin, or padding), which `min` with a non-negative distance leaves at −1.
    var distance = [Float](repeating: -1, count: columns.stride)
    for i in 0..<n {
        let x = points[3 * i], y = points[3 * i + 1], z = points[3 * i + 2]
        if x * x + y * y + z * z > 1e-3 { distance[i] = 1e10 }
    }
    let laneOffsets = Lanes(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
    // Per worker: the largest distance in its chunk and the lowest index holding it.
    var chunkBest = [(distance: Float, index: Int)](repeating: (-1, 0), count: cpuCount)
    columns.values.withUnsafeBufferPointer { c in
        let xs = c.baseAddress!, ys = xs + columns.stride, zs = ys + columns.stride
        distance.withUnsafeMutableBufferPointer { d in
            chunkBest.withUnsafeMutableBufferPointer { best in
                let dist = d.baseAddress!
                var current = 0
                for step in 1..<indices.count {
                    let cx = Vector(repeating: points[3 * current])
                    let cy = Vector(repeating: points[3 * current + 1])
                    let cz = Vector(repeating: points[3 * current + 2])
                    for w in 0..<best.count { best[w] = (-1, 0) }
                    // ~16k points per chunk pay for the hand-off to the second core.
                    parallelWorkers(columns.vectorCount, minimumChunk: 1024) { worker, blocks in
                        var laneBest = Vector(repeating: -1)
                        var laneBlock = Lanes(repeating: 0)
                        for b in blocks {
                            let dx = xs.vector(b) - cx, dy = ys.vector(b) - cy, dz = zs.vector(b) - cz
                            let squared = dx * dx + dy * dy + dz * dz
                            var updated = dist.vector(b)
                            updated.replace(with: squared, where: squared .< updated)
                            dist.storeVector(updated, at: b)
                            let better = updated .> laneBest
                            laneBest.replace(with: updated, where: better)
                            laneBlock.replace(with: Lanes(repeating: Int32(truncatingIfNeeded: b)), where: better)
                        }
                        // Strict `>` kept each lane's first block; take the lowest index among
                        // the lanes holding the maximum.
                        let top = laneBest.max()
                        let laneIndex = laneBlock &* Int32(lanes) &+ laneOffsets
                        let index = Lanes(repeating: .max).replacing(with: laneIndex, where: laneBest .== top).min()
                        best[worker] = (top, Int(index))
                    }
                    var winner = best[0]
                    for w in 1..<best.count where best[w].distance > winner.distance
                        || (best[w].distance == winner.distance && best[w].index < winner.index) {
                        winner = best[w]
                    }
                    current = winner.distance < 0 ? 0 : winner.index
                    indices[step] = current
                }
            }
        }
    }
}
