@testable import CFMGeometry
import CFMTensor
import Testing

/// Finite but extreme coordinates (±3e38, 1e20, subnormals, and all of them mixed with
/// ordinary ones), as a hostile or broken sensor can send when no plausibility check stands
/// in front of the geometry. Every operation must finish without trapping and keep its
/// contract: exact KNN, valid indices, weights that sum to 1, consistent reports.
@Suite struct ExtremeCoordinateTests {
    /// 240 points of a 4 cm part at ~0.3 m, with the coordinates `extreme` picks replaced.
    static func cloud(seed: UInt64, _ extreme: (_ point: Int, _ axis: Int, _ ordinary: Float) -> Float) -> [Float] {
        var random = SeededRandom(seed: seed)
        return (0..<240 * 3).map { i in extreme(i / 3, i % 3, random.uniform(0.28, 0.32)) }
    }

    static let subnormals: [Float] = [.leastNonzeroMagnitude, 3 * .leastNonzeroMagnitude, -1e-40, 1e-39, -.leastNonzeroMagnitude]

    /// The extreme clouds, named for the messages.
    static let clouds: [(name: String, points: [Float])] = [
        ("a third of the points at 3e38", cloud(seed: 1) { p, _, v in p % 3 == 0 ? 3e38 - Float(p) * 1e32 : v }),
        ("every point near 1e20", cloud(seed: 2) { _, _, v in 1e20 * v }),
        ("object at -3e38, rest ordinary", cloud(seed: 3) { p, a, v in p % 4 == 1 ? (a == 2 ? v : -3e38) : v }),
        ("±3.4e38 on both sides", cloud(seed: 4) { p, a, v in p % 2 == 0 ? (a == 1 ? -.greatestFiniteMagnitude : .greatestFiniteMagnitude) : v }),
        ("subnormal coordinates", cloud(seed: 5) { p, a, _ in subnormals[(p + a) % subnormals.count] * Float(p % 7 + 1) }),
        ("mixed", cloud(seed: 6) { p, a, v in
            [3e38, -3e38, 1e20, -1e20, subnormals[a], v, v, v][(p * 3 + a * 5) % 8]
        }),
    ]

    /// Brute force in Float64 over the same `(p − q)²` the search ranks by: [queries][k] of
    /// (squared distance, index).
    func reference(_ queries: [Float], _ points: [Float], k: Int) -> [[(distance: Double, index: Int)]] {
        stride(from: 0, to: queries.count, by: 3).map { q in
            stride(from: 0, to: points.count, by: 3).map { p -> (distance: Double, index: Int) in
                let dx = Double(points[p]) - Double(queries[q]), dy = Double(points[p + 1]) - Double(queries[q + 1])
                let dz = Double(points[p + 2]) - Double(queries[q + 2])
                return (dx * dx + dy * dy + dz * dz, p / 3)
            }.sorted { ($0.distance, $0.index) < ($1.distance, $1.index) }.prefix(k).map { $0 }
        }
    }

    @Test(arguments: clouds.indices) func nearestNeighboursStayExact(_ c: Int) throws {
        let (name, points) = Self.clouds[c]
        // Queries: the first 20 points and 10 of the extreme values on their own.
        let queries = Array(points[0..<60]) + [3e38, 3e38, 3e38, -3e38, 1e20, 0.3, 1e-45, 1e-45, 1e-45, 0, 0, 0,
                                                Float.greatestFiniteMagnitude, -.greatestFiniteMagnitude, 1, 0.3, 0.3, 0.3,
                                                1e20, 1e20, 1e20, -1e20, -1e20, 1e-40, 5, 5, 5, 1e30, -1e30, 1e30]
        let m = queries.count / 3
        for k in [1, 16, 240] {
            let knn = try NearestNeighbours(of: Tensor(shape: [m, 3], scalars: queries), in: Tensor(shape: [240, 3], scalars: points), k: k)
            let expected = reference(queries, points, k: k)
            for q in 0..<m {
                #expect(Array(knn.indices[q * k..<(q + 1) * k]) == expected[q].map(\.index), "\(name): query \(q), k \(k)")
                #expect(Array(knn.squaredDistances[q * k..<(q + 1) * k]) == expected[q].map { Float($0.distance) },
                        "\(name): query \(q), k \(k)")
            }
            _ = try knn.neighbourhoods(of: Tensor(shape: [m, 3], scalars: queries), in: Tensor(shape: [240, 3], scalars: points))
        }
    }

    @Test(arguments: clouds.indices) func farthestPointSamplingMatchesTheReferenceKernel(_ c: Int) throws {
        let (name, points) = Self.clouds[c]
        let sample = try farthestPointSampling(Tensor(shape: [240, 3], scalars: points), count: 64)
        #expect(sample.indices == FarthestPointSamplingTests().referenceFarthestPoints(points, count: 64), "\(name)")
        for (i, index) in sample.indices.enumerated() {
            #expect(Array(sample.centres.scalars[3 * i..<3 * i + 3]) == Array(points[3 * index..<3 * index + 3]))
        }
    }

    @Test(arguments: clouds.indices) func interpolationWeightsStayNormalised(_ c: Int) throws {
        let (name, points) = Self.clouds[c]
        let centres = Array(points[0..<3 * 40])
        let blend = try InverseDistanceInterpolation(points: Tensor(shape: [240, 3], scalars: points),
                                                     centres: Tensor(shape: [40, 3], scalars: centres))
        let expected = reference(points, centres, k: 3)
        for n in 0..<240 {
            let w = blend.weights[3 * n..<3 * n + 3]
            #expect(blend.indices[3 * n..<3 * n + 3].elementsEqual(expected[n].map(\.index)), "\(name): point \(n)")
            #expect(w.allSatisfy { $0.isFinite && $0 >= 0 } && abs(w.reduce(0, +) - 1) < 1e-6, "\(name): point \(n) weights \(Array(w))")
            #expect(w.first! >= w.last!, "\(name): point \(n): the nearest centre weighs least")
        }
        let blended = try blend.interpolate(Tensor(shape: [40, 1], scalars: (0..<40).map(Float.init)))
        #expect(blended.scalars.allSatisfy { $0 >= 0 && $0 <= 39 }, "\(name): a blend outside the centres' values")
    }

    /// Interpolation where every centre is farther than Float32 can square: the squared
    /// distances are +∞, and the nearest centre takes the whole weight.
    @Test func interpolationBeyondFloatRangeGoesToTheNearestCentre() throws {
        let centres = Tensor(shape: [3, 3], scalars: [3e38, 3e38, 3e38, -3e38, 3e38, 3e38, 3e38, -3e38, -3e38])
        let blend = try InverseDistanceInterpolation(points: Tensor(shape: [1, 3], scalars: [-3e38, -3e38, -3e38]), centres: centres)
        #expect(blend.indices == [2, 1, 0])
        #expect(blend.weights == [1, 0, 0])
    }

    /// A 24×24 organized view of `points` (cycled) standing on a plane at 0.5 m with a
    /// 1 cm grid, the border ring on the plane unless `extremeBorder`.
    func organized(_ points: [Float], extremeBorder: Bool) throws -> OrganizedCloud {
        let n = 24
        var coordinates = [Float](repeating: 0, count: n * n * 3)
        for y in 0..<n {
            for x in 0..<n {
                let i = y * n + x, inner = (4..<20).contains(x) && (4..<20).contains(y)
                let plane: [Float] = [Float(x) * 0.01 - 0.115, Float(y) * 0.01 - 0.115, 0.5]
                let point = Array(points[(3 * i) % points.count..<(3 * i) % points.count + 3])
                coordinates[3 * i..<3 * i + 3] = (inner || extremeBorder ? point : plane)[...]
            }
        }
        return try OrganizedCloud(height: n, width: n, coordinates: coordinates)
    }

    @Test(arguments: clouds.indices, [false, true]) func backgroundRemovalReportsConsistently(_ c: Int, _ extremeBorder: Bool) throws {
        let (name, points) = Self.clouds[c]
        var cloud = try organized(points, extremeBorder: extremeBorder)
        let before = cloud.foregroundCount
        var options = BackgroundRemovalOptions()
        options.borderWidth = 3
        options.sampleSize = 3
        options.iterations = 200
        let report = try cloud.removeBackground(options: options)
        #expect(report.remaining == cloud.foregroundCount, "\(name)")
        #expect(report.removedByPlane + report.removedByCluster + report.remaining == before, "\(name): \(report)")
        #expect(report.planeInliers <= report.borderPoints, "\(name): \(report)")
        if let plane = report.plane {
            #expect(abs((plane.normal * plane.normal).sum() - 1) < 1e-9 && plane.offset.isFinite, "\(name): \(plane)")
        }
    }

    @Test(arguments: clouds.indices) func largestClusterNeverLinksAcrossAnOverflow(_ c: Int) throws {
        let (name, points) = Self.clouds[c]
        var cloud = try organized(points, extremeBorder: true)
        let before = cloud.foregroundCount
        let removed = cloud.withView { $0.keepLargestCluster(linkDistance: 0.05) }
        #expect(removed + cloud.foregroundCount == before, "\(name)")
        // Pixels whose differences overflow Float32 (+∞ squared distance) are never linked.
        var apart = try OrganizedCloud(height: 1, width: 3, coordinates: [3e38, 3e38, 3e38, -3e38, -3e38, -3e38, 3e38, 3e38, 3e38])
        #expect(apart.withView { $0.keepLargestCluster(linkDistance: 1e18) } == 2)
    }

    /// The border ring may be wider than the image: background removal then fits the plane
    /// to every pixel instead of forming an empty (lower > upper) column range.
    @Test func borderRingWiderThanTheImage() throws {
        var random = SeededRandom(seed: 9)
        for (height, width) in [(30, 5), (5, 30), (1, 1), (21, 4), (3, 40)] {
            var cloud = try OrganizedCloud(height: height, width: width, coordinates: (0..<height * width).flatMap { _ in
                [random.uniform(-0.1, 0.1), random.uniform(-0.1, 0.1), 0.5]
            })
            let report = try cloud.removeBackground()  // borderWidth 10
            #expect(report.borderPoints == height * width, "\(height)×\(width)")
        }
    }

    @Test func organizedCloudSizesThatOverflowAreRefused() {
        #expect(throws: GeometryError.self) { try OrganizedCloud(height: Int.max, width: 2, coordinates: []) }
        #expect(throws: GeometryError.self) { try OrganizedCloud(height: 1 << 31, width: 1 << 31, coordinates: []) }
        #expect(throws: GeometryError.self) { try OrganizedCloud(height: -1, width: -3, coordinates: [0, 0, 0, 0, 0, 0, 0, 0, 0]) }
    }

    @Test func foregroundOfExtremeCloudsScattersBack() throws {
        for (name, points) in Self.clouds {
            let cloud = try organized(points, extremeBorder: true)
            let foreground = ForegroundPoints(of: cloud)
            let grid = try foreground.scatter(foreground.points)
            #expect(grid.scalars == cloud.coordinates, "\(name)")
        }
    }
}
