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

/// A candidate with its squared distance computed exactly (Float64 from the inputs), ordered
/// by (distance, index); `position` is its place in the search's Morton order.
struct ExactCandidate: Comparable {
    var distance: Double
    var index: Int32
    var position: Int32

    static func < (a: Self, b: Self) -> Bool { (a.distance, a.index) < (b.distance, b.index) }
}

/// A tile and a lower bound of some squared distance to it, packed so that plain integer
/// order is (bound, tile) order: the bound rounded down to Float32 (≥ 0, so its bits order
/// like its value; no bound exceeds 2¹²⁴ after scaling) in the high half, the tile below.
struct TileKey: Comparable {
    private let key: UInt64

    init(bound: Double, tile: Int) {
        var rounded = Float(bound)
        if Double(rounded) > bound { rounded = rounded.nextDown }
        key = UInt64(rounded.bitPattern) << 32 | UInt64(tile)
    }

    /// The bound (rounded down).
    var bound: Double { Double(Float(bitPattern: UInt32(truncatingIfNeeded: key >> 32))) }
    var tile: Int { Int(key & 0xFFFF_FFFF) }

    static func < (a: Self, b: Self) -> Bool { a.key < b.key }
}

/// The screening state of one query while the point tiles stream past: every point whose
/// screened distance is ≤ `limit`, which is the k-th smallest screened distance seen so far
/// plus `margin` (twice the screening error bound), or +max before the first compaction.
struct QueryCandidates {
    var candidates: GrowableBuffer<ApproximateCandidate>
    var limit: Float = .greatestFiniteMagnitude
    var margin: Double = 0

    /// Sets `limit` from any k distinct points' screened values (`screened`, k ≥ 1): the k-th
    /// smallest screened value of all points is at most their largest, so every point within
    /// the exact k-th distance screens ≤ that largest + `margin`.
    mutating func bound(byWorstOf screened: some Sequence<Float>) {
        limit = Float(Double(screened.max()!) + margin).nextUp
    }

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
/// neighbouring queries orders the 64-point tiles of the points by their boxes' distance to
/// the block's box. Each query of the block screens first the nearest of those tiles (at
/// least 2k points) in order of its own distance to them, which sets a tight limit early,
/// then the others in the block's order, skipping each tile whose box is provably too far
/// for it and stopping at the first whose block distance is; the screening is SIMD over the
/// tile's columns. So each query scans only its own surroundings. The GEMM form has a rounding error
/// below E(q) = η·(‖q‖ + R)², with R the largest centred ‖p‖ and η = 2⁻¹⁹ (≈ 4× the worst
/// case of centring, two 3-term norms, a 3-term dot product and two additions at unit
/// roundoff 2⁻²⁴), plus (‖q‖ + R + 1)·2⁻¹⁴⁰ for Float32 underflow (subnormal or scaled-down
/// coordinates: each of the ~16 operations loses at most 2⁻¹⁵⁰ absolutely, amplified at most
/// 12·(‖q‖ + R) times). Every point whose screened value is within 2·E(q) of the k-th smallest
/// is kept, which provably includes every point whose exact distance is ≤ the exact k-th
/// distance; those are re-ranked by their exact Float64 (p − q)² (no overflow: Float32
/// differences square to at most ~1e78). So the selected set (and its order) is the exact
/// KNN with ties to the lower index, whatever the screening rounding.
func searchNearest(
    queries: UnsafePointer<Float>, queryCount: Int,
    points: UnsafePointer<Float>, pointCount: Int, k: Int,
    indices: UnsafeMutablePointer<Int>, squaredDistances: UnsafeMutablePointer<Float>
) {
    precondition(k >= 1 && pointCount >= k, "k = \(k) of \(pointCount) points")
    let blockSize = 64, tileWidth = 64
    let lanes = PointColumns.lanes
    // Room for the first 2k points screened (< 2k + one tile) before the first compaction.
    let initialCapacity = max(4 * k, 2 * tileWidth)

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
        let xs = c.baseAddress!, ys = xs + columns.stride, zs = ys + columns.stride
        let normBase = normBuffer.baseAddress!, queryBase = cq.baseAddress!
        parallelWorkers((queryCount + blockSize - 1) / blockSize) { _, blocks in
            var state = QueryCandidates(candidates: GrowableBuffer(capacity: initialCapacity))
            var exact = GrowableBuffer<ExactCandidate>(capacity: initialCapacity)
            defer {
                state.candidates.deallocate()
                exact.deallocate()
            }
            var tileOrder = [TileKey](repeating: TileKey(bound: 0, tile: 0), count: tileCount)
            // The Morton positions of the previous query's neighbours.
            var previous = [Int](repeating: 0, count: k), hasPrevious = false
            var seeds = tileOrder
            for block in blocks {
                let first = block * blockSize, size = min(blockSize, queryCount - first)
                var blockBox = BoundingBox()
                for q in 0..<size {
                    let p = queryBase + 3 * (first + q)
                    blockBox.include(SIMD3(p[0], p[1], p[2]))
                }
                for t in 0..<tileCount { tileOrder[t] = TileKey(bound: blockBox.squaredDistance(to: tileBoxes[t]), tile: t) }
                tileOrder.withUnsafeMutableBufferPointer { $0.sort() }
                // The seed tiles: those meeting the block's box, and more of the nearest until
                // they hold at least 2k points (or all).
                var seedCount = 0, seedPoints = 0
                while seedCount < tileCount && (seedPoints < 2 * k || tileOrder[seedCount].bound == 0) {
                    seedPoints += min(tileWidth, pointCount - tileOrder[seedCount].tile * tileWidth)
                    seedCount += 1
                }
                for q in 0..<size {
                    let p = queryBase + 3 * (first + q)
                    var point = BoundingBox()
                    point.include(SIMD3(p[0], p[1], p[2]))
                    state.candidates.removeAll()
                    (state.limit, state.margin) = (.greatestFiniteMagnitude, margins[first + q])
                    // A first limit from the previous query's k neighbours (it is near in the Morton order).
                    if hasPrevious {
                        state.bound(byWorstOf: previous.lazy.map { position in
                            normBase[position] + (-2 * p[0] * xs[position] + -2 * p[1] * ys[position] + -2 * p[2] * zs[position])
                        })
                    }
                    /// The largest squared distance to the query that a point can have and still
                    /// be admitted: its screened value is ≥ that distance − ‖q‖² − E(q).
                    func reach() -> Double { Double(state.limit) + queryNorms[first + q] + state.margin }
                    // Screened distances ‖p‖² + (−2q)·p, −2q exact (a power of two).
                    let qx = PointColumns.Vector(repeating: -2 * p[0]), qy = PointColumns.Vector(repeating: -2 * p[1])
                    let qz = PointColumns.Vector(repeating: -2 * p[2])
                    func screen(_ t: Int) {
                        var limit = PointColumns.Vector(repeating: state.limit)
                        let firstVector = t * tileWidth / lanes, vectors = min(tileWidth, columns.stride - t * tileWidth) / lanes
                        for v in firstVector..<firstVector + vectors {
                            let distance = normBase.vector(v) + (qx * xs.vector(v) + qy * ys.vector(v) + qz * zs.vector(v))
                            let inside = distance .<= limit
                            guard any(inside) else { continue }
                            for lane in 0..<lanes where inside[lane] {
                                if state.candidates.isFull {
                                    state.compact(k: k)
                                    limit = PointColumns.Vector(repeating: state.limit)
                                }
                                state.candidates.append(ApproximateCandidate(
                                    distance: distance[lane], index: Int32(truncatingIfNeeded: v * lanes + lane)))
                            }
                        }
                    }
                    // The seeds nearest the query first: the first limit (the k-th of the first
                    // 2k points screened, plus the margin) is then close to the final one.
                    for s in 0..<seedCount {
                        seeds[s] = TileKey(bound: point.squaredDistance(to: tileBoxes[tileOrder[s].tile]), tile: tileOrder[s].tile)
                    }
                    seeds.withUnsafeMutableBufferPointer { $0[0..<seedCount].sort() }
                    var screenedPoints = 0
                    for key in seeds[0..<seedCount] {
                        let (distance, t) = (key.bound, key.tile)
                        if distance > reach() { break }
                        screen(t)
                        screenedPoints += min(tileWidth, pointCount - t * tileWidth)
                        if state.limit == .greatestFiniteMagnitude && screenedPoints >= 2 * k { state.compact(k: k) }
                    }
                    if state.limit == .greatestFiniteMagnitude { state.compact(k: k) }
                    // Then the block's order: every later tile is at least `bound` from the
                    // query, so the first one beyond its reach ends the search.
                    for key in tileOrder[seedCount...] {
                        let (bound, t) = (key.bound, key.tile)
                        if bound > reach() { break }
                        if point.squaredDistance(to: tileBoxes[t]) <= reach() { screen(t) }
                    }
                    state.compact(k: k)
                    let target = queryOrder[first + q]
                    let query = queries + 3 * target
                    let qxExact = Double(query[0]), qyExact = Double(query[1]), qzExact = Double(query[2])
                    exact.removeAll()
                    for candidate in state.candidates.elements {
                        let index = pointOrder[Int(candidate.index)], p = points + 3 * index
                        let dx = Double(p[0]) - qxExact, dy = Double(p[1]) - qyExact, dz = Double(p[2]) - qzExact
                        exact.append(ExactCandidate(distance: dx * dx + dy * dy + dz * dz, index: Int32(index), position: candidate.index))
                    }
                    var ranked = exact.elements
                    ranked.sortSmallest(k)
                    for j in 0..<k { previous[j] = Int(ranked[j].position) }
                    hasPrevious = true
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
