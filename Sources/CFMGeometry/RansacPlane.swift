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
/// with fewer than max(`sampleSize`, 3) points.
func ransacPlane(
    _ points: UnsafePointer<Float>, count: Int,
    sampleSize: Int, inlierDistance: Double, iterations: Int, seed: UInt64
) -> RansacPlaneFit? {
    guard count >= max(sampleSize, 3), iterations >= 1 else { return nil }
    func point(_ i: Int) -> SIMD3<Double> {
        SIMD3(Double(points[3 * i]), Double(points[3 * i + 1]), Double(points[3 * i + 2]))
    }
    // Hypotheses are drawn sequentially (one random stream) and scored in parallel.
    var random = SeededRandom(seed: seed)
    var order = Array(0..<count)
    let hypotheses = (0..<iterations).map { _ in
        for i in 0..<sampleSize { order.swapAt(i, Int.random(in: i..<count, using: &random)) }
        return Plane.leastSquares(count: sampleSize) { point(order[$0]) }
    }
    // Score in Float32 on coordinates centred on their mean, where n·p + d stays small; a
    // branch-free counting loop over the columns, which the compiler vectorises.
    var sum = SIMD3<Double>.zero
    for i in 0..<count { sum += point(i) }
    let mean = sum / Double(count)
    let columns = PointColumns(points, count: count, origin: SIMD3<Float>(mean))
    var inlierCounts = [Int](repeating: 0, count: iterations)
    columns.values.withUnsafeBufferPointer { c in
        let xs = c.baseAddress!, ys = xs + columns.stride, zs = ys + columns.stride
        let threshold = Float(inlierDistance)
        inlierCounts.withUnsafeMutableBufferPointer { inliers in
            parallelChunks(iterations, minimumChunk: 8) { range in
                for h in range {
                    let plane = hypotheses[h]
                    let nx = Float(plane.normal.x), ny = Float(plane.normal.y), nz = Float(plane.normal.z)
                    let d = Float(plane.signedDistance(mean))
                    var total: Int32 = 0, i = 0
                    while i < count {
                        total &+= abs(nx * xs[i] + ny * ys[i] + nz * zs[i] + d) < threshold ? 1 : 0
                        i &+= 1
                    }
                    inliers[h] = Int(total)
                }
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
