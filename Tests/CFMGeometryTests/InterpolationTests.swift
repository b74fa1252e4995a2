import CFMGeometry
import CFMTensor
import Testing

@Suite struct InterpolationTests {
    @Test func weightsAreNormalisedInverseSquaredDistances() throws {
        // Squared distances 1, 4, 4 (and 9 for the fourth centre): weights ∝ 1, ¼, ¼.
        let centres = Tensor(shape: [4, 3], scalars: [1, 1, 2, 1, 1, 3, 1, 1, -1, 1, 1, 4])
        let point = Tensor(shape: [1, 3], scalars: [1, 1, 1])
        let blend = try InverseDistanceInterpolation(points: point, centres: centres)
        #expect(blend.indices == [0, 1, 2])
        let expected: [Float] = [2.0 / 3, 1.0 / 6, 1.0 / 6]
        for (w, e) in zip(blend.weights, expected) { #expect(abs(w - e) < 1e-7) }
    }

    @Test func weightsSumToOneOnRandomClouds() throws {
        var random = SeededRandom(seed: 5)
        let points = Tensor(shape: [500, 3], scalars: (0..<1500).map { _ in random.uniform(0.2, 0.4) })
        let centres = Tensor(shape: [40, 3], scalars: (0..<120).map { _ in random.uniform(0.2, 0.4) })
        let blend = try InverseDistanceInterpolation(points: points, centres: centres)
        for n in 0..<500 {
            #expect(abs(blend.weights[3 * n..<3 * n + 3].reduce(0, +) - 1) < 1e-6)
            #expect(blend.weights[3 * n] >= blend.weights[3 * n + 2])  // nearest first
        }
    }

    @Test func reproducesALinearFunctionAtTheCentres() throws {
        // Centres a metre apart: at a centre its own weight rounds to exactly 1 in Float32.
        let corners: [[Float]] = (0..<8).map { (i: Int) -> [Float] in
            [Float(i % 2 + 1), Float(i / 2 % 2 + 1), Float(i / 4 + 1)]
        }
        let centres = Tensor(shape: [8, 3], scalars: corners.flatMap { $0 })
        func f(_ p: ArraySlice<Float>) -> [Float] {
            let (x, y, z) = (p[p.startIndex], p[p.startIndex + 1], p[p.startIndex + 2])
            return [2 * x - y + 0.5 * z + 1, -x + 3 * z]
        }
        let features = Tensor(shape: [8, 2], scalars: (0..<8).flatMap { f(centres.scalars[3 * $0..<3 * $0 + 3]) })
        let blend = try InverseDistanceInterpolation(points: centres, centres: centres)
        #expect(try blend.interpolate(features) == features)
        #expect((0..<8).map { blend.indices[3 * $0] } == Array(0..<8))
        // Half-way between centres 0 and 1 (squared distance ¼ each); centres 2…5 tie at 1¼
        // and the lowest index, 2, is the third: weights 4, 4, 0.8 over 8.8.
        let middle = try InverseDistanceInterpolation(points: Tensor(shape: [1, 3], scalars: [1.5, 1, 1]), centres: centres)
        #expect(middle.indices == [0, 1, 2])
        let value = try middle.interpolate(features).scalars
        let (f0, f1, f2) = (f([1, 1, 1]), f([2, 1, 1]), f([1, 2, 1]))
        for j in 0..<2 {
            let expected: Float = (4 * f0[j] + 4 * f1[j] + 0.8 * f2[j]) / 8.8
            #expect(abs(value[j] - expected) < 1e-5)
        }
    }

    @Test func rejectsBadArguments() throws {
        let centres = Tensor(shape: [2, 3], scalars: [1, 1, 1, 2, 2, 2])
        #expect(throws: GeometryError.self) {
            try InverseDistanceInterpolation(points: Tensor(shape: [1, 3]), centres: centres)
        }
        let blend = try InverseDistanceInterpolation(points: Tensor(shape: [1, 3]), centres: Tensor(shape: [3, 3]))
        #expect(throws: GeometryError.self) { try blend.interpolate(Tensor(shape: [4, 2])) }
    }
}
