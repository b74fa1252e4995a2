import CFMGeometry
import CFMTensor
import Testing

/// Brute force in Float64: the first k point indices by (squared distance, index).
func bruteForceNearest(_ queries: [Float], _ points: [Float], k: Int) -> [[Int]] {
    stride(from: 0, to: queries.count, by: 3).map { q in
        stride(from: 0, to: points.count, by: 3).map { p -> (Double, Int) in
            let d = (0..<3).reduce(0.0) { s, a in
                let diff = Double(points[p + a]) - Double(queries[q + a])
                return s + diff * diff
            }
            return (d, p / 3)
        }.sorted { $0 < $1 }.prefix(k).map(\.1)
    }
}

@Suite struct NearestNeighbourTests {
    /// A 13×13×13 lattice of spacing 1/128 m far from the origin: every coordinate, difference
    /// and square is exact, so distances tie exactly and often. 2197 points span two tiles.
    static let lattice: [Float] = (0..<2197).flatMap { (i: Int) -> [Float] in
        let steps: [Int] = [i % 13, i / 13 % 13, i / 169]
        return steps.map { (step: Int) -> Float in Float(step) / 128 + 0.5 }
    }

    @Test func matchesBruteForceOnALatticeWithTies() throws {
        var random = SeededRandom(seed: 3)
        // 100 queries (two blocks): lattice points, half-way points and random points.
        var queries: [Float] = []
        for i in 0..<100 {
            let base = Array(Self.lattice[(3 * (i * 37 % 2197))...].prefix(3))
            switch i % 3 {
            case 0: queries += base
            case 1: queries += base.map { $0 + 0.5 / 128 }
            default: queries += (0..<3).map { _ in random.uniform(0.48, 0.62) }
            }
        }
        let ranking = bruteForceNearest(queries, Self.lattice, k: 128)
        for k in [1, 7, 26, 128] {
            let knn = try NearestNeighbours(of: Tensor(shape: [100, 3], scalars: queries),
                                            in: Tensor(shape: [2197, 3], scalars: Self.lattice), k: k)
            let expected = ranking.map { Array($0.prefix(k)) }
            #expect(knn.queryCount == 100 && knn.k == k)
            for q in 0..<100 {
                #expect(Array(knn.indices[q * k..<(q + 1) * k]) == expected[q], "query \(q), k \(k)")
            }
        }
    }

    @Test func matchesBruteForceOnARandomCloudWithDistances() throws {
        var random = SeededRandom(seed: 11)
        let points = (0..<3000 * 3).map { i in random.uniform(-0.05, 0.05) + (i % 3 == 2 ? 0.6 : 0.1) }
        let queries = Array(points[0..<90])
        let knn = try NearestNeighbours(of: Tensor(shape: [30, 3], scalars: queries),
                                        in: Tensor(shape: [3000, 3], scalars: points), k: 32)
        let expected = bruteForceNearest(queries, points, k: 32)
        for q in 0..<30 {
            let row = Array(knn.indices[q * 32..<(q + 1) * 32])
            #expect(row == expected[q])
            #expect(row[0] == q && knn.squaredDistances[q * 32] == 0)  // each query is a point
            let d = Array(knn.squaredDistances[q * 32..<(q + 1) * 32])
            #expect(d == d.sorted())
        }
    }

    /// A frame's foreground at full size: ~20 000 pixels of a 224×224 map in row-major order
    /// on a stepped dome, with coordinates on a 1/4096 m lattice so that distances tie.
    static let frame: [Float] = (0..<224 * 224).flatMap { (pixel: Int) -> [Float] in
        let u = Float(pixel % 224 - 112) / 85, v = Float(pixel / 224 - 112) / 70
        let r: Float = u * u + v * v
        guard r < 1 else { return [] }
        let step: Float = pixel % 5 == 0 ? 0.003 : 0
        let z: Float = 0.5 - 0.04 * (1 - r) + step
        return [u * 0.06, v * 0.05, z].map { (value: Float) -> Float in (value * 4096).rounded() / 4096 }
    }

    /// The k nearest of `points` to the query at `q` (a [3] slice start) by (Float64 (p − q)², index).
    func nearest(_ queries: [Float], _ q: Int, in points: [Float], k: Int) -> [(distance: Double, index: Int)] {
        var best: [(distance: Double, index: Int)] = []
        for p in stride(from: 0, to: points.count, by: 3) {
            let dx = Double(points[p]) - Double(queries[q]), dy = Double(points[p + 1]) - Double(queries[q + 1])
            let dz = Double(points[p + 2]) - Double(queries[q + 2])
            let squared: Double = dx * dx + dy * dy + dz * dz
            let candidate = (distance: squared, index: p / 3)
            if best.count == k && !((candidate.distance, candidate.index) < (best[k - 1].distance, best[k - 1].index)) { continue }
            let at = best.firstIndex { (other: (distance: Double, index: Int)) -> Bool in
                (candidate.distance, candidate.index) < (other.distance, other.index)
            } ?? best.count
            best.insert(candidate, at: at)
            if best.count > k { best.removeLast() }
        }
        return best
    }

    @Test func matchesBruteForceAtFrameSizeBothWays() throws {
        let points: [Float] = Self.frame
        let n = points.count / 3
        #expect(n > 15_000)
        // 1024 centres of the frame (Point-MAE's groups) → 128 nearest points; every 16th checked.
        var centres: [Float] = []
        for c in 0..<1024 {
            let p = c * 19 % n
            centres += points[3 * p..<3 * p + 3]
        }
        let pointTensor = Tensor(shape: [n, 3], scalars: points), centreTensor = Tensor(shape: [1024, 3], scalars: centres)
        let groups = try NearestNeighbours(of: centreTensor, in: pointTensor, k: 128)
        for c in stride(from: 0, to: 1024, by: 16) {
            let expected = nearest(centres, 3 * c, in: points, k: 128)
            let indices: [Int] = expected.map(\.index), distances: [Float] = expected.map { Float($0.distance) }
            #expect(Array(groups.indices[c * 128..<(c + 1) * 128]) == indices, "centre \(c)")
            #expect(Array(groups.squaredDistances[c * 128..<(c + 1) * 128]) == distances, "centre \(c)")
        }
        // Every point → its 3 nearest centres (the interpolation); every 7th checked.
        let blend = try NearestNeighbours(of: pointTensor, in: centreTensor, k: 3)
        for p in stride(from: 0, to: n, by: 7) {
            let expected = nearest(points, 3 * p, in: centres, k: 3)
            let indices: [Int] = expected.map(\.index), distances: [Float] = expected.map { Float($0.distance) }
            #expect(Array(blend.indices[3 * p..<3 * p + 3]) == indices, "point \(p)")
            #expect(Array(blend.squaredDistances[3 * p..<3 * p + 3]) == distances, "point \(p)")
        }
    }

    @Test func isExactWhereTheGemmFormCannotRank() throws {
        // Two shells of radius 1 cm, 2 m apart: their squared distances to the shell centres
        // differ by ~1e-9 m², far below the GEMM form's rounding (~1e-7 m² at 1 m from the
        // mean), so only the exact re-ranking can pick the right 100 of each 300.
        var random = SeededRandom(seed: 13)
        let centres: [SIMD3<Float>] = [SIMD3(1, 0.5, 0.5), SIMD3(-1, -0.5, 0.7)]
        var points: [Float] = []
        for i in 0..<600 {
            let direction = SIMD3(random.normal(), random.normal(), random.normal())
            let radius = 0.01 * (1 + random.uniform(-1e-4, 1e-4))
            let p = centres[i % 2] + direction / (direction * direction).sum().squareRoot() * radius
            points += [p.x, p.y, p.z]
        }
        let queries = centres.flatMap { [$0.x, $0.y, $0.z] }
        let knn = try NearestNeighbours(of: Tensor(shape: [2, 3], scalars: queries),
                                        in: Tensor(shape: [600, 3], scalars: points), k: 100)
        let expected = bruteForceNearest(queries, points, k: 100)
        #expect(Array(knn.indices[0..<100]) == expected[0])
        #expect(Array(knn.indices[100..<200]) == expected[1])
    }

    @Test func neighbourhoodsArePointMinusQuery() throws {
        let points = Tensor(shape: [4, 3], scalars: [1, 1, 1, 2, 1, 1, 1, 3, 1, 5, 5, 5])
        let queries = Tensor(shape: [2, 3], scalars: [1, 1, 1, 5, 5, 4])
        let knn = try NearestNeighbours(of: queries, in: points, k: 2)
        #expect(knn.indices == [0, 1, 3, 2])
        #expect(knn.squaredDistances == [0, 1, 1, 29])
        let groups = try knn.neighbourhoods(of: queries, in: points)
        #expect(groups.shape == [2, 2, 3])
        #expect(groups.scalars == [0, 0, 0, 1, 0, 0, /**/ 0, 0, 1, -4, -2, -3])
        #expect(throws: GeometryError.self) { try knn.neighbourhoods(of: points, in: points) }
    }

    @Test func rejectsBadArguments() throws {
        let points = Tensor(shape: [4, 3])
        #expect(throws: GeometryError.tooFewPoints(operation: "5-nearest-neighbour search", required: 5, available: 4)) {
            try NearestNeighbours(of: points, in: points, k: 5)
        }
        #expect(throws: GeometryError.self) { try NearestNeighbours(of: points, in: points, k: 0) }
        #expect(throws: GeometryError.self) { try NearestNeighbours(of: Tensor(shape: [3, 4]), in: points, k: 1) }
        #expect(try NearestNeighbours(of: Tensor(shape: [0, 3]), in: points, k: 2).indices.isEmpty)
    }
}
