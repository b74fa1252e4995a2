import CFMDetector
import CFMModels
import CFMTensor
import CFMTestSupport
import Foundation
import Testing

/// Mappers, alignment, ψ maps, smoothing and score against the PyTorch reference
/// (`tools/reference/make_pipeline_fixtures.py`).
@Suite struct ScoringParityTests {
    let tolerance: Float = 1e-5

    @Test func mapperMatchesTheReference() throws {
        let fx = try Fixtures.open("mapper_tiny.safetensors")
        let mapper = try FeatureMapper(weights: fx, inFeatures: 24, outFeatures: 16)
        #expect(mapper.hidden == 20)
        let x = try fx.tensor("x")
        var scratch = [Float](repeating: 0, count: 2 * 10 * mapper.hidden)
        let y = x.map(to: [10, 16]) { mapper.apply(rows: 10, x: $0, y: $1, scratch: &scratch) }
        #expect(relativeError(y, try fx.tensor("y")) < tolerance)
    }

    @Test func pointAlignmentMatchesScatterAndPooling() throws {
        let fx = try Fixtures.open("align_tiny.safetensors")
        let size = 32
        let pixels = try fx.tensor("align.pixels").scalars.map { Int($0) }
        let indices = try fx.tensor("align.indices").scalars.map { Int32($0) }
        let weights = try fx.tensor("align.weights").scalars
        let combinations = PixelCombinations.pointAlignment(size: size, foregroundPixels: pixels, neighbors: indices,
                                                            weights: weights)
        let map = combinations.denseMap(from: try fx.tensor("align.features"), width: 8)
        let expected = try fx.tensor("align.xyz_map")
        #expect(relativeError(map, expected) < tolerance)
        // Masked pixels are exactly the all-zero ones of the reference map.
        let referenceUnmasked = (0..<(size * size)).filter { p in (0..<8).contains { expected.scalars[$0 * size * size + p] != 0 } }
        #expect(combinations.pixels == referenceUnmasked)
    }

    @Test func bilinearCombinationsMatchTheUpsamplingKernel() throws {
        var rng = SeededRandom(seed: 5)
        let grid = 4, size = 32, d = 3
        let tokens = Tensor(shape: [grid * grid, d], scalars: (0..<(grid * grid * d)).map { _ in rng.normal() })
        let all = PixelCombinations.bilinearUpsampling(grid: grid, size: size, pixels: Array(0..<(size * size)))
        let planes = VisionTransformer.channelMajor(tokens, grid: grid)
        let expected = planes.map(to: [d, size, size]) {
            bilinearResize($0, channels: d, height: grid, width: grid, outHeight: size, outWidth: size, out: $1)
        }
        #expect(relativeError(all.denseMap(from: tokens, width: d), expected) < 1e-6)
    }

    @Test func psiSmoothingAndScoreMatchTheReference() throws {
        let fx = try Fixtures.open("score_tiny.safetensors")
        let size = 32
        let maps = try ["e2d", "e2d_hat", "e3d", "e3d_hat"].map { try fx.tensor($0) }
        var psi2d = Tensor(shape: [size, size]), psi3d = psi2d
        for p in 0..<(size * size) {
            func column(_ t: Tensor) -> [Float] { (0..<t.shape[0]).map { t.scalars[$0 * size * size + p] } }
            let observed3d = column(maps[2])
            guard observed3d.reduce(0, +) != 0 else { continue }
            psi2d.scalars[p] = AnomalyScoring.normalizedDistance(column(maps[1]), column(maps[0]), count: 12)
            psi3d.scalars[p] = AnomalyScoring.normalizedDistance(column(maps[3]), observed3d, count: 8)
        }
        #expect(relativeError(psi2d, try fx.tensor("psi2d")) < tolerance)
        #expect(relativeError(psi3d, try fx.tensor("psi3d")) < tolerance)
        let psi = Tensor(shape: [size, size], scalars: zip(psi2d.scalars, psi3d.scalars).map(*))
        let smoothed = AnomalyScoring.smooth(psi, size: size)
        #expect(relativeError(smoothed, try fx.tensor("anomaly_map")) < tolerance)
        let score = AnomalyScoring.imageScore(smoothed), expected = try fx.tensor("score").scalars[0]
        #expect(abs(score - expected) < tolerance * expected)
    }
}
