import CFMGeometry
import CFMTensor
import Testing

@Suite struct FarthestPointSamplingTests {
    func points(_ p: [[Float]]) -> Tensor { Tensor(shape: [p.count, 3], scalars: p.flatMap { $0 }) }

    @Test func takesTheFarthestPointEachStep() throws {
        // On a line through (1, 1, z): from z = 1 the farthest is z = 5, then z = 3 (min
        // distance 4), then z = 2 (min distance 1).
        let sample = try farthestPointSampling(points([[1, 1, 1], [1, 1, 2], [1, 1, 5], [1, 1, 3]]), count: 4)
        #expect(sample.indices == [0, 2, 3, 1])
        #expect(sample.centres.shape == [4, 3])
        #expect(sample.centres.scalars == [1, 1, 1, 1, 1, 5, 1, 1, 3, 1, 1, 2])
    }

    @Test func tiesGoToTheLowestIndex() throws {
        // Points 1 and 2 are both at squared distance 1 from point 0; point 3 duplicates 1.
        let sample = try farthestPointSampling(points([[1, 1, 1], [1, 1, 2], [1, 1, 0.5], [1, 1, 2], [1, 2, 1]]), count: 3)
        #expect(sample.indices == [0, 1, 4])
    }

    @Test func pointsNearTheOriginAreNeverTaken() throws {
        // Point 1 (|p|² = 3e-4) is by far the farthest but is skipped; once the eligible
        // points are used up, the lowest-index eligible point repeats, as in the kernel.
        let sample = try farthestPointSampling(points([[1, 1, 1], [0.01, 0.01, 0.01], [1, 1, 1.5]]), count: 4)
        #expect(sample.indices == [0, 2, 0, 0])
        // |p|² just above 1e-3 is eligible.
        let eligible = try farthestPointSampling(points([[1, 1, 1], [0.02, 0.02, 0.02], [1, 1, 1.5]]), count: 2)
        #expect(eligible.indices == [0, 1])
    }

    @Test func startsAtPointZeroEvenWhenItIsSkipped() throws {
        let sample = try farthestPointSampling(points([[0, 0, 0.01], [1, 1, 1], [1, 1, 3], [1, 1, 2]]), count: 3)
        #expect(sample.indices == [0, 2, 1])
        let none = try farthestPointSampling(points([[0, 0, 0.01], [0, 0.02, 0]]), count: 3)
        #expect(none.indices == [0, 0, 0])
    }

    @Test func matchesAScalarReferenceAcrossParallelChunks() throws {
        // 40 000 points (two parallel chunks) on a coarse lattice, so many distances tie,
        // with a band of points near the origin that must be skipped.
        var random = SeededRandom(seed: 7)
        var coordinates: [Float] = []
        for i in 0..<40_000 {
            if i % 97 == 5 {
                coordinates += [0.01, -0.01, 0.02]
            } else {
                coordinates += (0..<3).map { _ in Float(Int.random(in: -8...8, using: &random)) * 0.125 + 0.0625 }
            }
        }
        let cloud = Tensor(shape: [40_000, 3], scalars: coordinates)
        let sample = try farthestPointSampling(cloud, count: 24)
        #expect(sample.indices == referenceFarthestPoints(coordinates, count: 24))
    }

    /// A frame's foreground: `n` points of a curved 12 cm part 0.5 m away in row-major pixel
    /// order, on a 1/1024 m lattice in x and y (so distances tie), with every 53rd point at the
    /// origin (never taken) and runs of duplicated points.
    static func surface(_ n: Int, seed: UInt64) -> [Float] {
        var random = SeededRandom(seed: seed)
        let points = (0..<n).map { i -> SIMD3<Float> in
            if i % 53 == 7 { return .zero }
            let x = Float(Int(random.uniform(-0.06, 0.06) * 1024)) / 1024, y = Float(Int(random.uniform(-0.06, 0.06) * 1024)) / 1024
            return SIMD3(x, y, 0.5 - 0.02 * Float(i % 11) / 11)
        }.sorted { ($0.y, $0.x) < ($1.y, $1.x) }
        return points.flatMap { [$0.x, $0.y, $0.z] }
    }

    @Test(arguments: [(20_000, 1024), (3_000, 2_000), (130, 200)] as [(Int, Int)])
    func tileSkippingMatchesTheScalarReference(_ n: Int, _ count: Int) throws {
        // Production size (1024 of ~20 000: late steps touch few tiles), a cloud sampled until
        // its distances are mostly 0, and more centres than points (repeats).
        let coordinates = Self.surface(n, seed: UInt64(n))
        let sample = try farthestPointSampling(Tensor(shape: [n, 3], scalars: coordinates), count: count)
        #expect(sample.indices == referenceFarthestPoints(coordinates, count: count))
    }

    @Test func rejectsBadArguments() {
        #expect(throws: GeometryError.self) { try farthestPointSampling(Tensor(shape: [4, 2]), count: 2) }
        #expect(throws: GeometryError.tooFewPoints(operation: "farthest point sampling", required: 1, available: 0)) {
            try farthestPointSampling(Tensor(shape: [0, 3]), count: 2)
        }
        #expect(throws: GeometryError.self) { try farthestPointSampling(Tensor(shape: [4, 3]), count: -1) }
    }

    /// The reference kernel's loop, one point at a time.
    func referenceFarthestPoints(_ p: [Float], count: Int) -> [Int] {
        let n = p.count / 3
        var distance = [Float](repeating: 1e10, count: n)
        var chosen = [0]
        while chosen.count < count {
            let c = chosen.last!
            var best: Float = -1, bestIndex = 0
            for i in 0..<n {
                let x = p[3 * i], y = p[3 * i + 1], z = p[3 * i + 2]
                if x * x + y * y + z * z <= 1e-3 { continue }
                let dx = x - p[3 * c], dy = y - p[3 * c + 1], dz = z - p[3 * c + 2]
                distance[i] = min(distance[i], dx * dx + dy * dy + dz * dz)
                if distance[i] > best { (best, bestIndex) = (distance[i], i) }
            }
            chosen.append(bestIndex)
        }
        return chosen
    }
}
