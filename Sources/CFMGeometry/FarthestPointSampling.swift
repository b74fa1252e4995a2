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
/// - Complexity: O(N · count) at worst, vectorised over struct-of-arrays columns; on a
///   surface most steps touch only the few tiles of points near the new centre.
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

/// Points per tile of `farthestPointIndices`: four SIMD vectors of consecutive indices.
private let samplingTileWidth = 64
/// Tiles per group of `farthestPointIndices`.
private let samplingGroupTiles = 16

/// Fills `indices[1...]` (indices[0] = 0) for `n` points stored [n, 3] at `points`.
///
/// The points are cut into tiles of 64 consecutive indices (the foreground points of a frame
/// come in row-major pixel order, so a tile is a short run of a row), each with its bounding
/// box, its largest distance and the lowest index holding that. A step updates only the tiles
/// a new centre can change: a tile is skipped when the squared distance from the centre to
/// its box, computed in Float32 with the kernel's own operations in the kernel's order, is
/// ≥ the tile's largest distance. That skip is exact, not approximate: rounding is monotone,
/// so every point of the box has |fl(p − c)| ≥ fl(gap) on each axis and hence a computed
/// squared distance ≥ the box's, which leaves its running minimum unchanged. The winner is
/// then the largest tile maximum, ties to the lower tile (tiles are in index order). Groups of
/// 16 tiles carry the same box and maximum, so most steps test a few groups, not every tile.
private func farthestPointIndices(_ points: UnsafePointer<Float>, pointCount n: Int, into indices: inout [Int]) {
    typealias Vector = PointColumns.Vector
    let vectorsPerTile = samplingTileWidth / PointColumns.lanes
    let tileCount = (n + samplingTileWidth - 1) / samplingTileWidth
    // Distance to the chosen set; −1 marks points that are never candidates (too close to
    // the origin, or padding), which `min` with a non-negative distance leaves at −1.
    var distance = [Float](repeating: -1, count: tileCount * samplingTileWidth)
    // Per tile: its box over the eligible points ([6, tileCount]: low x, y, z, high x, y, z;
    // empty, so never updated, when it has none), its largest distance and the lowest index
    // holding it (−1 and 0 without eligible points).
    var boxes = [Float](repeating: .infinity, count: 6 * tileCount)
    for t in 0..<tileCount { for axis in 3..<6 { boxes[axis * tileCount + t] = -.infinity } }
    var tileBest = [Float](repeating: -1, count: tileCount)
    var tileIndex = [Int32](repeating: 0, count: tileCount)
    for i in 0..<n {
        let x = points[3 * i], y = points[3 * i + 1], z = points[3 * i + 2]
        guard x * x + y * y + z * z > 1e-3 else { continue }
        distance[i] = 1e10
        let t = i / samplingTileWidth
        for axis in 0..<3 {
            boxes[axis * tileCount + t] = min(boxes[axis * tileCount + t], points[3 * i + axis])
            boxes[(axis + 3) * tileCount + t] = max(boxes[(axis + 3) * tileCount + t], points[3 * i + axis])
        }
        if tileBest[t] < 0 { (tileBest[t], tileIndex[t]) = (1e10, Int32(i)) }
    }
    // Groups of 16 tiles with the union of their boxes and the largest of their maxima: a
    // group the new centre cannot change (the same test on its box: each tile's box lies
    // inside it) is skipped whole.
    let groupCount = (tileCount + samplingGroupTiles - 1) / samplingGroupTiles
    var groupBoxes = [Float](repeating: 0, count: 6 * groupCount)
    var groupBest = [Float](repeating: -1, count: groupCount)
    for g in 0..<groupCount {
        let tiles = g * samplingGroupTiles..<min(tileCount, (g + 1) * samplingGroupTiles)
        for axis in 0..<3 {
            groupBoxes[axis * groupCount + g] = tiles.map { boxes[axis * tileCount + $0] }.min()!
            groupBoxes[(axis + 3) * groupCount + g] = tiles.map { boxes[(axis + 3) * tileCount + $0] }.max()!
        }
        groupBest[g] = tiles.map { tileBest[$0] }.max()!
    }
    // The coordinates as x, y and z columns over every tile (zeros in the padding).
    let pointStride = tileCount * samplingTileWidth
    var columns = [Float](repeating: 0, count: 3 * pointStride)
    for i in 0..<n { for axis in 0..<3 { columns[axis * pointStride + i] = points[3 * i + axis] } }
    columns.withUnsafeBufferPointer { c in
    distance.withUnsafeMutableBufferPointer { d in
    boxes.withUnsafeBufferPointer { b in
    groupBoxes.withUnsafeBufferPointer { gb in
    tileBest.withUnsafeMutableBufferPointer { best in
    groupBest.withUnsafeMutableBufferPointer { bestOfGroup in
    tileIndex.withUnsafeMutableBufferPointer { bestIndex in
        let xs = c.baseAddress!, ys = xs + pointStride, zs = ys + pointStride
        let dist = d.baseAddress!
        var current = 0
        for step in 1..<indices.count {
            let x = points[3 * current], y = points[3 * current + 1], z = points[3 * current + 2]
            let cx = Vector(repeating: x), cy = Vector(repeating: y), cz = Vector(repeating: z)
            /// Squared distance from the centre to box `i` of `count` boxes stored [6, count]
            /// (low x, y, z, high x, y, z), with the kernel's operations in its order.
            func reach(_ boxes: UnsafePointer<Float>, _ count: Int, _ i: Int) -> Float {
                let gx = max(boxes[i] - x, x - boxes[3 * count + i], 0)
                let gy = max(boxes[count + i] - y, y - boxes[4 * count + i], 0)
                let gz = max(boxes[2 * count + i] - z, z - boxes[5 * count + i], 0)
                return gx * gx + gy * gy + gz * gz
            }
            for group in 0..<groupCount where reach(gb.baseAddress!, groupCount, group) < bestOfGroup[group] {
                let tiles = group * samplingGroupTiles..<min(tileCount, (group + 1) * samplingGroupTiles)
                for tile in tiles where reach(b.baseAddress!, tileCount, tile) < best[tile] {
                    for v in tile * vectorsPerTile..<(tile + 1) * vectorsPerTile {
                        let dx = xs.vector(v) - cx, dy = ys.vector(v) - cy, dz = zs.vector(v) - cz
                        let squared = dx * dx + dy * dy + dz * dz
                        var updated = dist.vector(v)
                        updated.replace(with: squared, where: squared .< updated)
                        dist.storeVector(updated, at: v)
                    }
                    // The largest distance and the first (lowest) index holding it.
                    let top = largest(dist + tile * samplingTileWidth, count: samplingTileWidth)
                    var index = tile * samplingTileWidth
                    while dist[index] != top { index += 1 }
                    (best[tile], bestIndex[tile]) = (top, Int32(index))
                }
                bestOfGroup[group] = largest(best.baseAddress! + tiles.lowerBound, count: tiles.count)
            }
            // The largest maximum, then the first (lowest) group and tile holding it.
            let top = largest(bestOfGroup.baseAddress!, count: groupCount)
            var winner = 0
            while bestOfGroup[winner] != top { winner += 1 }
            winner *= samplingGroupTiles
            while best[winner] != top { winner += 1 }
            current = top < 0 ? 0 : Int(bestIndex[winner])
            indices[step] = current
        }
    }
    }
    }
    }
    }
    }
    }
}

/// The largest of `count` values (none NaN), over four independent running maxima so the
/// comparisons do not wait on each other.
@inline(__always)
private func largest(_ values: UnsafeMutablePointer<Float>, count: Int) -> Float {
    var m0: Float = -.infinity, m1 = m0, m2 = m0, m3 = m0
    var i = 0
    while i + 4 <= count {
        (m0, m1, m2, m3) = (max(m0, values[i]), max(m1, values[i + 1]), max(m2, values[i + 2]), max(m3, values[i + 3]))
        i += 4
    }
    while i < count {
        m0 = max(m0, values[i])
        i += 1
    }
    return max(max(m0, m1), max(m2, m3))
}
