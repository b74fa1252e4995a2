import CFMTensor

/// The best plane RANSAC found and how well it explains the points it was fitted to.
struct RansacPlaneFit {
    let plane: Plane
    /// Points within the inlier distance of `plane`.
    let inliers: Int
}

/// Seeded RANSAC plane fit to `count` points stored [count, 3] at `points` (metres), in the
/// manner of Open3D's `segment_plane`:
/// each of `iterations` hypotheses is the least-squares plane through `sampleSize` distinct
/// random points (SeededRandom(`seed`), so the result is deterministic); the best hypothesis
/// has the most points with |n·p + d| < `inlierDistance` (ties: the earlier hypothesis); the
/// returned plane is the least-squares refit to the best hypothesis's inliers. Returns nil
/// with fewer than max(`sampleSize`, 3) points. `groups` (one per point, each in
/// 0 ..< `groupCount`) gathers nearby points into blocks (`PlaneInlierCounter`); it changes
/// the cost, never the result.
func ransacPlane(
    _ points: UnsafePointer<Float>, count: Int, groups: [Int32], groupCount: Int,
    sampleSize: Int, inlierDistance: Double, iterations: Int, seed: UInt64
) -> RansacPlaneFit? {
    guard count >= max(sampleSize, 3), iterations >= 1 else { return nil }
    func point(_ i: Int) -> SIMD3<Double> {
        SIMD3(Double(points[3 * i]), Double(points[3 * i + 1]), Double(points[3 * i + 2]))
    }
    // Samples are drawn sequentially (one random stream); the hypotheses are fitted and
    // scored in parallel.
    var random = SeededRandom(seed: seed)
    var order = Array(0..<count)
    var samples = [Int](repeating: 0, count: iterations * sampleSize)
    for h in 0..<iterations {
        for i in 0..<sampleSize { order.swapAt(i, Int.random(in: i..<count, using: &random)) }
        for i in 0..<sampleSize { samples[h * sampleSize + i] = order[i] }
    }
    var hypotheses = [Plane](repeating: Plane(normal: SIMD3(0, 0, 1), offset: 0), count: iterations)
    hypotheses.withUnsafeMutableBufferPointer { hypotheses in
        samples.withUnsafeBufferPointer { samples in
            parallelChunks(iterations, minimumChunk: 8) { range in
                for h in range {
                    hypotheses[h] = Plane.leastSquares(count: sampleSize) { point(samples[h * sampleSize + $0]) }
                }
            }
        }
    }
    // Score in Float32 on coordinates centred on their mean, where n·p + d stays small.
    var sum = SIMD3<Double>.zero
    for i in 0..<count { sum += point(i) }
    let mean = sum / Double(count)
    let counter = PlaneInlierCounter(points, count: count, groups: groups, groupCount: groupCount, origin: SIMD3<Float>(mean))
    var inlierCounts = [Int](repeating: 0, count: iterations)
    let threshold = Float(inlierDistance)
    inlierCounts.withUnsafeMutableBufferPointer { inliers in
        parallelChunks(iterations, minimumChunk: 8) { range in
            for h in range {
                let plane = hypotheses[h]
                let normal = SIMD3(Float(plane.normal.x), Float(plane.normal.y), Float(plane.normal.z))
                inliers[h] = counter.inliers(normal: normal, offset: Float(plane.signedDistance(mean)), threshold: threshold)
            }
        }
    }
    // Most inliers; the first such hypothesis (the refit below makes tied hypotheses with
    // the same inlier set equivalent).
    let best = inlierCounts.firstIndex(of: inlierCounts.max()!)!
    let chosen = hypotheses[best]
    let inliers = (0..<count).filter { abs(chosen.signedDistance(point($0))) < inlierDistance }
    guard inliers.count >= 3 else { return RansacPlaneFit(plane: chosen, inliers: inliers.count) }
    let refit = Plane.leastSquares(count: inliers.count) { point(inliers[$0]) }
    let refitInliers = (0..<count).reduce(0) { $0 + (abs(refit.signedDistance(point($1))) < inlierDistance ? 1 : 0) }
    return RansacPlaneFit(plane: refit, inliers: refitInliers)
}

/// Counts the points within a distance of a plane exactly as the per-point Float32 test
/// |((nx·x + ny·y) + nz·z) + d| < t on coordinates centred on `origin`, but decides whole
/// blocks of nearby points at once where it can.
///
/// Per block the box of its centred points gives its centre c, half extents e and magnitude
/// bound a (per axis). For every point p of the block the real value V(p) = n·p + d is within
/// Σ|nᵢ|·eᵢ of V(c), and the Float32 evaluation is within γ₄·(Σ|nᵢ|·aᵢ + |d|) ≤ 2⁻²²·(…) of
/// V(p) (plus < 2⁻¹⁴⁰ for underflow). With M = Σ|nᵢ|·(eᵢ + 2⁻²¹·aᵢ) + 2⁻²¹·|d| + 2⁻¹⁴⁰ (twice
/// the rounding bound, so the Float64 rounding of the bound itself is covered): |V(c)| + M < t
/// means every point passes, |V(c)| − M ≥ t that none does; otherwise the block's points are
/// tested one by one. A block with a non-finite coordinate is always tested point by point.
/// So the count equals the per-point loop's whatever the blocks; on a surface the blocks are
/// small (a few millimetres, `groups`), so a plane near the surface costs a few Float64
/// operations per block instead of per point.
struct PlaneInlierCounter {
    /// [3, count] centred coordinates (x column, y, z), grouped by block.
    private let columns: [Float]
    private let count: Int
    /// Block b holds columns `blockStart[b] ..< blockStart[b + 1]`.
    private let blockStart: [Int32]
    /// Per block: centre and widths e + 2⁻²¹·a + 2⁻¹⁴⁰ per axis (+∞ for a non-finite block).
    private let centres: [SIMD3<Double>], widths: [SIMD3<Double>]

    /// `count` points stored [count, 3] at `points`; points with equal `groups` values (each in
    /// 0 ..< `groupCount`) form a block.
    init(_ points: UnsafePointer<Float>, count: Int, groups: [Int32], groupCount: Int, origin: SIMD3<Float>) {
        precondition(groups.count == count, "\(groups.count) groups for \(count) points")
        self.count = count
        // The points in order of their group (counting sort).
        var next = [Int32](repeating: 0, count: groupCount + 1)
        for g in groups { next[Int(g) + 1] += 1 }
        for g in 0..<groupCount { next[g + 1] += next[g] }
        var order = [Int](repeating: 0, count: count)
        for (i, g) in groups.enumerated() {
            order[Int(next[Int(g)])] = i
            next[Int(g)] += 1
        }
        var columns = [Float](repeating: 0, count: 3 * count)
        var blockStart: [Int32] = []
        var centres: [SIMD3<Double>] = [], widths: [SIMD3<Double>] = []
        var low = SIMD3<Float>(), high = SIMD3<Float>(), finite = true
        func closeBlock(_ end: Int) {
            guard let first = blockStart.last, Int(first) < end else { return }
            let lower = SIMD3<Double>(low), upper = SIMD3<Double>(high)
            let magnitude = pointwiseMax(pointwiseMax(lower, -lower), pointwiseMax(upper, -upper))
            centres.append((lower + upper) / 2)
            widths.append(finite ? (upper - lower) / 2 + 0x1p-21 * magnitude + 0x1p-140 : SIMD3(repeating: .infinity))
        }
        for (i, source) in order.enumerated() {
            let p = SIMD3(points[3 * source] - origin.x, points[3 * source + 1] - origin.y, points[3 * source + 2] - origin.z)
            (columns[i], columns[count + i], columns[2 * count + i]) = (p.x, p.y, p.z)
            if i == 0 || groups[source] != groups[order[i - 1]] {
                closeBlock(i)
                blockStart.append(Int32(i))
                (low, high, finite) = (p, p, true)
            }
            low = pointwiseMin(low, p)
            high = pointwiseMax(high, p)
            finite = finite && p.x.isFinite && p.y.isFinite && p.z.isFinite
        }
        closeBlock(count)
        blockStart.append(Int32(count))
        self.columns = columns
        self.blockStart = blockStart
        self.centres = centres
        self.widths = widths
    }

    /// Number of points p with |((nx·x + ny·y) + nz·z) + d| < `threshold` (Float32, centred p).
    func inliers(normal: SIMD3<Float>, offset d: Float, threshold: Float) -> Int {
        let n = SIMD3<Double>(normal), magnitude = pointwiseMax(n, -n), t = Double(threshold)
        let slack = 0x1p-21 * abs(Double(d)) + 0x1p-140
        let (nx, ny, nz) = (normal.x, normal.y, normal.z)
        return columns.withUnsafeBufferPointer { c in
            let xs = c.baseAddress!, ys = xs + count, zs = ys + count
            var total = 0
            for b in 0..<blockStart.count - 1 {
                let first = Int(blockStart[b]), end = Int(blockStart[b + 1])
                let centre = abs((n * centres[b]).sum() + Double(d))
                let margin = (magnitude * widths[b]).sum() + slack
                if centre + margin < t {
                    total += end - first
                } else if !(centre - margin >= t) {
                    var inside: Int32 = 0, i = first
                    while i < end {
                        inside &+= abs(nx * xs[i] + ny * ys[i] + nz * zs[i] + d) < threshold ? 1 : 0
                        i &+= 1
                    }
                    total += Int(inside)
                }
            }
            return total
        }
    }
}
