import CFMTensor

/// A point whose screened (GEMM-form) squared distance to the query is small enough to
/// matter; `index` is its position in the search's Morton order. Ordered by the screened
/// distance alone: it only sets limits, the exact ranking settles ties.
struct ApproximateCandidate: Comparable {
    var distance: Float
    var index: Int32

    static func < (a: Self, b: Self) -> Bool { a.distance < b.distance }
    static func == (a: Self, b: Self) -> Bool { a.distance == b.distance }
}

/// A candidate with its squared distance computed exactly (Float64 from the inputs).
struct ExactCandidate: Comparable {
    var distance: Double
    var index: Int32

    static func < (a: Self, b: Self) -> Bool { (a.distance, a.index) < (b.distance, b.index) }
}

/// The screening state of one query while the point tiles stream past: every point whose
/// screened distance is ≤ `limit`, which is the k-th smallest screened distance seen so far
/// plus `margin` (twice the screening error bound), or +max before the first compaction.
struct QueryCandidates {
    var candidates: GrowableBuffer<ApproximateCandidate>
    var limit: Float = .greatestFiniteMagnitude
    var margin: Double = 0

    /// Keeps only the candidates within `margin` of the k-th smallest (updating `limit`);
    /// grows the buffer when that leaves it more than half full.
    mutating func compact(k: Int) {
        var held = candidates.elements
        held.partition(aroundNth: k - 1)
        limit = Float(Double(held[k - 1].distance) + margin).nextUp
        var kept = 0
        for i in 0..<held.count where held[i].distance <= limit {
            held[kept] = held[i]
            kept += 1
        }
        candidates.truncate(to: kept)
        if kept > candidates.capacity / 2 { candidates.grow() }
    }
}

/// Exact k-nearest-neighbour search of `queryCount` queries among `pointCount` points
/// (both stored [count, 3], finite, of any magnitude), writing [queryCount, k] point indices
/// and squared distances, ascending by (exact squared distance, point index).
///
/// Screening uses the GEMM form ‖p‖² − 2·q·p (‖q‖² is constant per query) on coordinates
/// centred on the points' mean. When some centred coordinate of a point or query exceeds
/// 2⁶⁰ (≈ 1e18 m; never for a real sensor), the centred coordinates are also scaled by a
/// power of two that brings them within ±2⁶⁰, so norms and dot products stay finite in
/// Float32 (≤ 12·2¹²⁰ < 2¹²⁸): unscaled they would overflow to ±∞ and NaN, and a query could
/// be left with fewer than k candidates. Queries and points are put in Morton order; a block of 64
/// neighbouring queries visits the 256-point tiles of neighbouring points nearest first and
/// stops at the first tile whose bounding box is provably too far for every query of the
/// block, so each query scans only its surroundings. The GEMM form has a rounding error
/// below E(q) = η·(‖q‖ + R)², with R the largest centred ‖p‖ and η = 2⁻¹⁹ (≈ 4× the worst
/// case of centring, two 3-term norms, a 3-term dot product and two additions at unit
/// roundoff 2⁻²⁴), plus (‖q‖ + R + 1)·2⁻¹⁴⁰ for Float32 underflow (subnormal or scaled-down
/// coordinates: each of the ~16 operations loses at most 2⁻¹⁵⁰ absolutely, amplified at most
/// 12·(‖q‖ + R) times). Every point whose screened value is within 2·E(q) of the k-th smallest
/// is kept, which provably includes every point whose exact distance is ≤ the exact k-th
/// distance; those are re-ranked by their exact Float64 (p − q)² (no overflow: Float32
/// differences square to at most ~1e78). So the selected set (and its order) is the exact
/// KNN with ties to the lower index, whatever the GEMM rounding.
func searchNearest(
    queries: UnsafePointer<Float>, queryCount: Int,
    points: UnsafePointer<Float>, pointCount: Int, k: Int,
    indices: UnsafeMutablePointer<Int>, squaredDistances: UnsafeMutablePointer<Float>
) {
    precondition(k >= 1 && pointCount >= k, "k = \(k) of \(pointCount) points")
    let blockSize = 64, tileWidth = 256
    let lanes = PointColumns.lanes
    let initialCapacity = max(4 * k, 16)

    var bounds = BoundingBox(), sum = SIMD3<Double>.zero
    for i in 0..<pointCount {
        let p = SIMD3(points[3 * i], points[3 * i + 1], points[3 * i + 2])
        bounds.include(p)
        sum += SIMD3<Double>(p)
    }
    let origin = SIMD3<Float>(sum / Double(pointCount))
    // The largest centred coordinate of any point or query, and the scale that keeps it ≤ 2⁶⁰.
    let centre = SIMD3<Double>(origin)
    func farthestAxis(_ p: SIMD3<Float>) -> Double {
        let d = SIMD3<Double>(p) - centre
        return pointwiseMax(d, -d).max()
    }
    var spread = max(farthestAxis(bounds.lower), farthestAxis(bounds.upper))
    for i in 0..<queryCount { spread = max(spread, farthestAxis(SIMD3(queries[3 * i], queries[3 * i + 1], queries[3 * i + 2]))) }
    let scale = spread <= 0x1p60 ? 1 : Double(sign: .plus, exponent: 59 - spread.exponent, significand: 1)
    let pointOrder = mortonOrder(points, count: pointCount, within: bounds)
    let queryOrder = mortonOrder(queries, count: queryCount, within: bounds)
    let columns = PointColumns(points, count: pointCount, order: pointOrder, origin: origin, scale: scale)
    // ‖p‖² of the centred points; +∞ in the padding keeps it from ever being a candidate.
    var norms = [Float](repeating: .infinity, count: columns.stride)
    var largestNorm: Float = 0
    for i in 0..<pointCount {
        let p = columns.point(i)
        norms[i] = p.x * p.x + p.y * p.y + p.z * p.z
        largestNorm = max(largestNorm, norms[i])
    }
    let radius = Double(largestNorm).squareRoot()
    let tileCount = (pointCount + tileWidth - 1) / tileWidth
    let tileBoxes = (0..<tileCount).map { t in
        var box = BoundingBox()
        for i in t * tileWidth..<min(pointCount, (t + 1) * tileWidth) { box.include(columns.point(i)) }
        return box
    }
    // Centred (and scaled) queries in Morton order, with their squared norms and screening
    // margins 2·E(q).
    var centredQueries = [Float](repeating: 0, count: 3 * queryCount)
    var queryNorms = [Double](repeating: 0, count: queryCount), margins = queryNorms
    for i in 0..<queryCount {
        let q = queries + 3 * queryOrder[i]
        for axis in 0..<3 { centredQueries[3 * i + axis] = PointColumns.centred(q[axis], origin[axis], scale: scale) }
        let c = SIMD3<Double>(SIMD3(centredQueries[3 * i], centredQueries[3 * i + 1], centredQueries[3 * i + 2]))
        queryNorms[i] = (c * c).sum()
        let reach = queryNorms[i].squareRoot() + radius
        margins[i] = 2 * 0x1p-19 * reach * reach * (1 + 0x1p-20) + 2 * (reach + 1) * 0x1p-140
    }

    columns.values.withUnsafeBufferPointer { c in
    norms.withUnsafeBufferPointer { normBuffer in
    centredQueries.withUnsafeBufferPointer { cq in
        let columnBase = c.baseAddress!, normBase = normBuffer.baseAddress!, queryBase = cq.baseAddress!
        parallelWorkers((queryCount + blockSize - 1) / blockSize) { _, blocks in
            let tile = UnsafeMutablePointer<Float>.allocate(capacity: blockSize * tileWidth)
            let states = UnsafeMutableBufferPointer<QueryCandidates>.allocate(capacity: blockSize)
            var exact = GrowableBuffer<ExactCandidate>(capacity: initialCapacity)
            for q in 0..<blockSize {
                states.initializeElement(at: q, to: QueryCandidates(candidates: GrowableBuffer(capacity: initialCapacity)))
            }
            defer {
                for q in 0..<blockSize { states[q].candidates.deallocate() }
                states.deallocate()
                exact.deallocate()
                tile.deallocate()
            }
            var tileOrder = [(bound: Double, tile: Int)](repeating: (0, 0), count: tileCount)
            for block in blocks {
                let first = block * blockSize, size = min(blockSize, queryCount - first)
                var blockBox = BoundingBox()
                for q in 0..<size {
                    let p = queryBase + 3 * (first + q)
                    blockBox.include(SIMD3(p[0], p[1], p[2]))
                    states[q].candidates.removeAll()
                    states[q].limit = .greatestFiniteMagnitude
                    states[q].margin = margins[first + q]
                }
                for t in 0..<tileCount { tileOrder[t] = (blockBox.squaredDistance(to: tileBoxes[t]), t) }
                tileOrder.sort { $0 < $1 }
                for (bound, t) in tileOrder {
                    // No query of the block can admit a point of this tile (or of any later,
                    // farther one): its screened value is ≥ bound − ‖q‖² − E(q) > limit.
                    var reach = -Double.infinity
                    for q in 0..<size { reach = max(reach, Double(states[q].limit) + queryNorms[first + q] + states[q].margin) }
                    if bound > reach { break }
                    let start = t * tileWidth, width = min(tileWidth, columns.stride - start)
                    gemm(m: size, n: width, k: 3, alpha: -2,
                         a: queryBase + 3 * first, lda: 3,
                         b: columnBase + start, ldb: columns.stride,
                         c: tile, ldc: width)
                    let tileNorms = normBase + start
                    for q in 0..<size {
                        let row = UnsafePointer(tile + q * width)
                        var limit = PointColumns.Vector(repeating: states[q].limit)
                        for v in 0..<width / lanes {
                            let distance = row.vector(v) + tileNorms.vector(v)
                            let inside = distance .<= limit
                            guard any(inside) else { continue }
                            for lane in 0..<lanes where inside[lane] {
                                if states[q].candidates.isFull {
                                    states[q].compact(k: k)
                                    limit = PointColumns.Vector(repeating: states[q].limit)
                                }
                                states[q].candidates.append(ApproximateCandidate(
                                    distance: distance[lane], index: Int32(truncatingIfNeeded: start + v * lanes + lane)))
                            }
                        }
                        // A first limit as soon as k candidates are in, so far tiles get skipped.
                        if states[q].limit == .greatestFiniteMagnitude && states[q].candidates.count >= k {
                            states[q].compact(k: k)
                        }
                    }
                }
                for q in 0..<size {
                    states[q].compact(k: k)
                    let target = queryOrder[first + q]
                    let query = queries + 3 * target
                    let qx = Double(query[0]), qy = Double(query[1]), qz = Double(query[2])
                    exact.removeAll()
                    for candidate in states[q].candidates.elements {
                        let index = pointOrder[Int(candidate.index)], p = points + 3 * index
                        let dx = Double(p[0]) - qx, dy = Double(p[1]) - qy, dz = Double(p[2]) - qz
                        exact.append(ExactCandidate(distance: dx * dx + dy * dy + dz * dz, index: Int32(index)))
                    }
                    var ranked = exact.elements
                    ranked.sortSmallest(k)
                    let row = target * k
                    for j in 0..<k {
                        indices[row + j] = Int(ranked[j].index)
                        squaredDistances[row + j] = Float(ranked[j].distance)
                    }
                }
            }
        }
    }
    }
    }
}
