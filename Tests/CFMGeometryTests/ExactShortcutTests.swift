@testable import CFMGeometry
import CFMTensor
import Testing

/// The shortcuts of background removal (cell-level DBSCAN units and whole-cell decisions, the
/// RANSAC inlier counter's whole-block decisions) against straightforward implementations of
/// the same definitions, on clouds built to sit on the shortcuts' edges: points exactly eps
/// apart, on cell boundaries, duplicated, dense blobs and sparse noise, non-finite values.
@Suite struct ExactShortcutTests {
    /// DBSCAN by its definition (`DensityClusters`), all pairs compared: neighbours when
    /// ((dx² + dy²) + dz²) < eps² in Float64, itself included; clusters grown from the first
    /// unlabelled core in index order; a border point takes the smallest cluster among its
    /// core neighbours.
    static func referenceLabels(_ points: [SIMD3<Float>], eps: Double, minPoints: Int) -> [Int32] {
        let n = points.count, limit = eps * eps
        let p = points.map { SIMD3<Double>($0) }
        func close(_ i: Int, _ j: Int) -> Bool {
            let dx = p[i].x - p[j].x, dy = p[i].y - p[j].y, dz = p[i].z - p[j].z
            return dx * dx + dy * dy + dz * dz < limit
        }
        let neighbours = (0..<n).map { i in (0..<n).filter { close(i, $0) } }
        let isCore = neighbours.map { $0.count >= minPoints }
        var labels = [Int32](repeating: -1, count: n), clusters: Int32 = 0
        for seed in 0..<n where isCore[seed] && labels[seed] < 0 {
            var stack = [seed]
            labels[seed] = clusters
            while let i = stack.popLast() {
                for j in neighbours[i] where isCore[j] && labels[j] < 0 {
                    labels[j] = clusters
                    stack.append(j)
                }
            }
            clusters += 1
        }
        for i in 0..<n where !isCore[i] {
            labels[i] = neighbours[i].filter { isCore[$0] }.map { labels[$0] }.min() ?? -1
        }
        return labels
    }

    /// A cloud on the edges of the DBSCAN shortcuts, scaled to `eps`: dense blobs (cells all
    /// core), sparse blobs (cells below minPoints, compared point by point), a lattice of
    /// spacing exactly eps (pairs exactly eps apart are not neighbours) and of eps/2 (cell
    /// boundaries), those lattice points nudged by one ulp, duplicates, and noise.
    static func edgeCloud(eps: Float, seed: UInt64) -> [SIMD3<Float>] {
        var random = SeededRandom(seed: seed)
        var points: [SIMD3<Float>] = []
        for blob in 0..<6 {
            let centre = SIMD3(random.uniform(0, 40 * eps), random.uniform(0, 40 * eps), random.uniform(0, 10 * eps))
            let spread = eps * (blob < 3 ? 0.4 : 1.5)
            for _ in 0..<(blob < 3 ? 120 : 60) {
                points.append(centre + spread * SIMD3(random.normal(), random.normal(), random.normal()))
            }
        }
        let origin = SIMD3(random.uniform(0, 40 * eps), random.uniform(0, 40 * eps), 3 * eps)
        for i in 0..<6 {
            for j in 0..<6 {
                let exact = origin + SIMD3(Float(i) * eps, Float(j) * eps, 0)
                let half = origin + SIMD3(Float(i) * eps / 2, Float(j) * eps / 2, eps)
                points.append(exact)
                points.append(half)
                points.append(SIMD3(half.x.nextUp, half.y.nextDown, half.z))
                if (i + j) % 3 == 0 { points.append(exact) }
            }
        }
        for _ in 0..<150 {
            points.append(SIMD3(random.uniform(0, 40 * eps), random.uniform(0, 40 * eps), random.uniform(0, 10 * eps)))
        }
        // Shuffled, so no cell's points arrive in order.
        for i in points.indices.reversed() { points.swapAt(i, Int.random(in: 0...i, using: &random)) }
        return points
    }

    @Test(arguments: [(0.25, 1), (0.25, 4), (0.006, 8), (0.006, 30), (0.01, 2)] as [(Double, Int)], [1, 2] as [UInt64])
    func densityLabelsEqualTheDefinition(_ setting: (eps: Double, minPoints: Int), _ seed: UInt64) throws {
        var points = Self.edgeCloud(eps: Float(setting.eps), seed: seed)
        points += [SIMD3(.nan, 0.1, 0.1), SIMD3(.infinity, 0.1, 0.1), SIMD3(3e38, -3e38, 1)]
        let tensor = Tensor(shape: [points.count, 3], scalars: points.flatMap { [$0.x, $0.y, $0.z] })
        let clusters = try DensityClusters(points: tensor, eps: setting.eps, minPoints: setting.minPoints)
        let expected = Self.referenceLabels(points, eps: setting.eps, minPoints: setting.minPoints)
        let differing = zip(clusters.labels, expected).filter { $0 != $1 }.count
        #expect(differing == 0, "\(differing) of \(points.count) labels differ")
        #expect(clusters.clusterCount == Int(expected.max()!) + 1)
        #expect(expected.contains(-1) && expected.max()! >= 1, "the cloud should hold noise and several clusters")
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func keptClusterOfAnOrganizedCloudEqualsTheDefinition(_ seed: UInt64) throws {
        // The edge cloud laid out on pixels (row-major) with background pixels between.
        let eps = 0.006
        var random = SeededRandom(seed: seed)
        let points = Self.edgeCloud(eps: Float(eps), seed: seed)
        var coordinates: [Float] = [], foreground: [SIMD3<Float>] = []
        for p in points {
            if random.uniform() < 0.2 { coordinates += [0, 0, 0] }
            if random.uniform() < 0.05 { coordinates += [p.x, 0, p.z] }  // one zero: background
            coordinates += [p.x, p.y, p.z]
            foreground.append(p)
        }
        let width = 37
        coordinates += [Float](repeating: 0, count: (width - coordinates.count / 3 % width) % width * 3)
        var cloud = try OrganizedCloud(height: coordinates.count / 3 / width, width: width, coordinates: coordinates)
        let removed = cloud.withView { $0.keepLargestDensityCluster(eps: eps, minPoints: 8) }

        let labels = Self.referenceLabels(foreground, eps: eps, minPoints: 8)
        var counts = [Int32: Int]()
        for label in labels { counts[label, default: 0] += 1 }
        let kept = counts.keys.sorted().max { counts[$0]! < counts[$1]! || (counts[$0]! == counts[$1]! && $0 > $1) }!
        let survivors = (0..<cloud.pixelCount).filter(cloud.isForeground).map {
            SIMD3(cloud.coordinates[3 * $0], cloud.coordinates[3 * $0 + 1], cloud.coordinates[3 * $0 + 2])
        }
        let expected = zip(foreground, labels).filter { $0.1 == kept }.map(\.0)
        #expect(survivors == expected, "\(survivors.count) points kept, \(expected.count) expected")
        #expect(removed == foreground.count - survivors.count)
    }

    @Test func cellLimitsAreTheDivisionsFloor() {
        // The coordinate limits of a cell reproduce ⌊p / side⌋ for the Floats around them.
        for side in [0.003, 0.25, 1e-30, 7e35] {
            for key in [-3.0, -1, 0, 1, 2, 1000, -524_287] {
                let lower = CellGrid.smallestFloat(scaledAtLeast: key, side: side)
                let upper = CellGrid.smallestFloat(scaledAtLeast: key + 1, side: side)
                for f in [lower.nextDown, lower, lower.nextUp, upper.nextDown, upper, upper.nextUp] where f.isFinite {
                    let inCell = (Double(f) / side).rounded(.down) == key
                    #expect(inCell == (f >= lower && f < upper), "side \(side), key \(key), f \(f)")
                }
            }
        }
        #expect(CellGrid.smallestFloat(scaledAtLeast: 1, side: 1e300) == .infinity)
        #expect(CellGrid.smallestFloat(scaledAtLeast: -1, side: 1e300) == -.greatestFiniteMagnitude)
    }

    /// The per-point count the inlier counter must equal.
    static func referenceInliers(_ points: [SIMD3<Float>], normal: SIMD3<Float>, offset d: Float, threshold: Float) -> Int {
        points.filter { abs(normal.x * $0.x + normal.y * $0.y + normal.z * $0.z + d) < threshold }.count
    }

    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func inlierCounterEqualsThePerPointTest(_ seed: UInt64) {
        // Points on a noisy plane in pixel-like tiles, some exactly at the threshold's edge,
        // some far off, a few non-finite; planes near and far from it.
        var random = SeededRandom(seed: seed)
        let normal = SIMD3<Float>(0.05, 0.02, -1) / (SIMD3<Float>(0.05, 0.02, -1) * SIMD3<Float>(0.05, 0.02, -1)).sum().squareRoot()
        let threshold: Float = 0.004
        var points: [SIMD3<Float>] = [], groups: [Int32] = []
        for i in 0..<4000 {
            var p = SIMD3(random.uniform(-0.2, 0.2), random.uniform(-0.2, 0.2), 0)
            p.z = (normal.x * p.x + normal.y * p.y) / -normal.z + 0.0005 * random.normal()
            switch i % 50 {
            case 0: p.z += 0.05
            case 1: p.z = (normal.x * p.x + normal.y * p.y + threshold) / -normal.z
            case 2: p.z = (normal.x * p.x + normal.y * p.y - threshold) / -normal.z
            case 3 where i % 1000 == 3: p.x = .nan
            case 4 where i % 1000 == 4: p.y = -.infinity
            default: break
            }
            points.append(p)
            // Blocks of 2 cm × 2 cm (most of them decided whole), the non-finite points in a 401st.
            let bin = SIMD2<Float>((p.x + 0.2) / 0.02, (p.y + 0.2) / 0.02)
            groups.append(bin.x.isFinite && bin.y.isFinite ? Int32(min(19, Int(bin.y))) * 20 + Int32(min(19, Int(bin.x))) : 400)
        }
        let flat = points.flatMap { [$0.x, $0.y, $0.z] }
        let counter = PlaneInlierCounter(flat, count: points.count, groups: groups, groupCount: 401, origin: .zero)
        for trial in 0..<60 {
            let tilt = SIMD3(0.002 * random.normal(), 0.002 * random.normal(), 0) * Float(trial % 3)
            let n = normal + tilt, d = trial % 4 == 0 ? 0.02 * random.normal() : 0.001 * random.normal()
            for t in [threshold, threshold.nextUp, 1e-7, 10] {
                #expect(counter.inliers(normal: n, offset: d, threshold: t)
                        == Self.referenceInliers(points, normal: n, offset: d, threshold: t), "trial \(trial), threshold \(t)")
            }
        }
    }

    /// RANSAC as first written: every hypothesis scored by the per-point Float32 test.
    static func referenceRansac(_ points: [Float], sampleSize: Int, inlierDistance: Double, iterations: Int,
                                seed: UInt64) -> RansacPlaneFit {
        let count = points.count / 3
        func point(_ i: Int) -> SIMD3<Double> { SIMD3(Double(points[3 * i]), Double(points[3 * i + 1]), Double(points[3 * i + 2])) }
        var random = SeededRandom(seed: seed)
        var order = Array(0..<count)
        let hypotheses = (0..<iterations).map { _ in
            for i in 0..<sampleSize { order.swapAt(i, Int.random(in: i..<count, using: &random)) }
            return Plane.leastSquares(count: sampleSize) { point(order[$0]) }
        }
        let mean = (0..<count).reduce(SIMD3<Double>.zero) { $0 + point($1) } / Double(count)
        let origin = SIMD3<Float>(mean)
        let centred = (0..<count).map { i in
            SIMD3(points[3 * i] - origin.x, points[3 * i + 1] - origin.y, points[3 * i + 2] - origin.z)
        }
        let counts = hypotheses.map { plane in
            Self.referenceInliers(centred, normal: SIMD3(Float(plane.normal.x), Float(plane.normal.y), Float(plane.normal.z)),
                                  offset: Float(plane.signedDistance(mean)), threshold: Float(inlierDistance))
        }
        let chosen = hypotheses[counts.firstIndex(of: counts.max()!)!]
        let inliers = (0..<count).filter { abs(chosen.signedDistance(point($0))) < inlierDistance }
        let refit = Plane.leastSquares(count: inliers.count) { point(inliers[$0]) }
        return RansacPlaneFit(plane: refit, inliers: (0..<count).filter { abs(refit.signedDistance(point($0))) < inlierDistance }.count)
    }

    @Test(arguments: [0, 7] as [UInt64])
    func ransacEqualsTheExhaustiveScoring(_ seed: UInt64) throws {
        // Two objects, one reaching into the border ring, so blocks straddle the threshold.
        let scene = SyntheticScene(size: 200, objects: [(100, 100, 40), (12, 60, 25)], seed: 3)
        var ring = scene.cloud
        let border = ring.withView { $0.borderPoints(width: 10) }
        var options = BackgroundRemovalOptions()
        options.seed = seed
        options.iterations = 200
        for inlierDistance in [options.inlierDistance, 0.0004] {
            let fit = try #require(border.points.withUnsafeBufferPointer {
                ransacPlane($0.baseAddress!, count: $0.count / 3, groups: border.tiles, groupCount: border.tileCount,
                            sampleSize: options.sampleSize, inlierDistance: inlierDistance,
                            iterations: options.iterations, seed: options.seed)
            })
            let expected = Self.referenceRansac(border.points, sampleSize: options.sampleSize, inlierDistance: inlierDistance,
                                                iterations: options.iterations, seed: options.seed)
            #expect(fit.plane == expected.plane)
            #expect(fit.inliers == expected.inliers)
        }
    }

    @Test(arguments: [1, 2] as [UInt64])
    func planeClearingEqualsTheSignedDistance(_ seed: UInt64) throws {
        // Points scattered across the clearing distance of a tilted plane, some at it exactly.
        var random = SeededRandom(seed: seed)
        let plane = Plane(normal: SIMD3(0.1, -0.2, -1), offset: 0.5)
        let distance = 0.005
        var coordinates: [Float] = []
        for i in 0..<4000 {
            let p = SIMD3(Double(random.uniform(-0.3, 0.3)), Double(random.uniform(-0.3, 0.3)), 0.5)
            let target = i % 7 == 0 ? distance : Double(random.uniform(-0.008, 0.008))
            let onPlane = p - plane.normal * plane.signedDistance(p)
            let q = onPlane + plane.normal * target
            coordinates += i % 13 == 0 ? [0, Float(q.y), Float(q.z)] : [Float(q.x), Float(q.y), Float(q.z)]
        }
        var cloud = try OrganizedCloud(height: 50, width: 80, coordinates: coordinates)
        let original = cloud
        let (removed, left) = cloud.withView { $0.clearPoints(near: plane, distance: distance) }
        let near = (0..<original.pixelCount).filter { original.isForeground(pixel: $0) }.map { pixel in
            let c = original.coordinates
            return abs(plane.signedDistance(SIMD3(Double(c[3 * pixel]), Double(c[3 * pixel + 1]), Double(c[3 * pixel + 2])))) < distance
        }
        #expect(removed == near.filter { $0 }.count && left == near.filter { !$0 }.count)
        #expect((0..<cloud.pixelCount).filter(cloud.isForeground).count == left)
        #expect(removed > 500 && left > 500)
    }
}
