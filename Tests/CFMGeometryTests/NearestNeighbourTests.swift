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
