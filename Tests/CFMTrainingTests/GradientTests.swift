import CFMDetector
import CFMModels
import CFMTensor
import CFMTestSupport
import Testing
@testable import CFMTraining

/// The analytic gradients of the joint mapper loss against central finite differences.
@Suite struct GradientTests {
    /// A tiny sample: 5 tokens of 6-d, 4 centres of 4-d, 7 pixels blending 1–3 sources each.
    static func sample(seed: UInt64) -> TrainingSample {
        var rng = SeededRandom(seed: seed)
        func terms(_ sources: Int) -> [[(source: Int, weight: Float)]] {
            (0..<7).map { p in (0..<(1 + p % 3)).map { _ in (source: Int(rng.next() % UInt64(sources)), weight: rng.uniform(0.1, 1)) } }
        }
        let pixels = Array(0..<7)
        return TrainingSample(rgbTokens: Tensor(shape: [5, 6], scalars: (0..<30).map { _ in rng.normal() }),
                              pointFeatures: Tensor(shape: [4, 4], scalars: (0..<16).map { _ in rng.normal() }),
                              rgb: PixelCombinations(size: 3, pixels: pixels, terms: terms(5)),
                              xyz: PixelCombinations(size: 3, pixels: pixels, terms: terms(4)))
    }

    static func mappers(seed: UInt64) -> (FeatureMapper, FeatureMapper) {
        (.initial(inFeatures: 6, outFeatures: 4, seed: seed), .initial(inFeatures: 4, outFeatures: 6, seed: seed + 1))
    }

    /// The loss by plain forward passes, in Float64 for clean finite differences.
    static func loss(_ samples: [TrainingSample], _ a: FeatureMapper, _ b: FeatureMapper) -> Double {
        var c3 = 0.0, c2 = 0.0, n = 0
        for s in samples {
            let count = s.rgb.pixels.count
            var e2 = [Float](repeating: 0, count: count * 6), e3 = [Float](repeating: 0, count: count * 4)
            s.rgb.gather(0..<count, from: s.rgbTokens.scalars, width: 6, bias: nil, into: &e2)
            s.xyz.gather(0..<count, from: s.pointFeatures.scalars, width: 4, bias: nil, into: &e3)
            var y3 = [Float](repeating: 0, count: count * 4), y2 = [Float](repeating: 0, count: count * 6)
            var scratch = [Float](repeating: 0, count: 2 * count * 5)
            a.apply(rows: count, x: e2, y: &y3, scratch: &scratch)
            b.apply(rows: count, x: e3, y: &y2, scratch: &scratch)
            for i in 0..<count {
                c3 += Double(CosineLoss.similarity(Array(y3[(4 * i)..<(4 * i + 4)]), Array(e3[(4 * i)..<(4 * i + 4)]),
                                                   width: 4, count: 1, gradient: nil))
                c2 += Double(CosineLoss.similarity(Array(y2[(6 * i)..<(6 * i + 6)]), Array(e2[(6 * i)..<(6 * i + 6)]),
                                                   width: 6, count: 1, gradient: nil))
            }
            n += count
        }
        return (1 - c3 / Double(n)) + (1 - c2 / Double(n))
    }

    @Test func backpropagationMatchesFiniteDifferences() {
        let samples = [Self.sample(seed: 1), Self.sample(seed: 2)]
        let (a, b) = Self.mappers(seed: 3)
        let step = StepGradients(rgbToXYZ: a, xyzToRGB: b, batch: samples)
        for s in samples { _ = step.backpropagate(sample: s, rgb: s.rgb, xyz: s.xyz, batchPixels: 14) }
        let gradients = step.reduced()
        var worst: Float = 0
        for (m, flat) in [a.flatParameters, b.flatParameters].enumerated() {
            for i in 0..<flat.count {
                func perturbed(_ delta: Float) -> Double {
                    var p = flat
                    p[i] += delta
                    let changed = FeatureMapper(inFeatures: m == 0 ? 6 : 4, outFeatures: m == 0 ? 4 : 6, flat: p)
                    return m == 0 ? Self.loss(samples, changed, b) : Self.loss(samples, a, changed)
                }
                let h: Float = 1e-2
                let numeric = Float((perturbed(h) - perturbed(-h)) / Double(2 * h))
                worst = max(worst, abs(numeric - gradients[m][i]))
            }
        }
        let scale = gradients.flatMap { $0 }.reduce(0) { max($0, abs($1)) }
        #expect(worst < 2e-3 * scale + 1e-4, "worst gradient error \(worst) at scale \(scale)")
    }

    @Test func trainingReducesTheLoss() {
        let samples = (0..<6).map { Self.sample(seed: UInt64(10 + $0)) }
        let (a, b) = Self.mappers(seed: 4)
        var trainer = MapperTrainer(rgbToXYZ: a, xyzToRGB: b, seed: 1, learningRate: 1e-2)
        let before = trainer.epoch(samples, batchSize: 4)
        for _ in 0..<30 { trainer.epoch(samples, batchSize: 4) }
        let after = trainer.epoch(samples, batchSize: 4)
        #expect(after.loss < before.loss * 0.8, "loss \(before.loss) → \(after.loss)")
        #expect(after.pixels == 42)
    }

    @Test func subsamplingDrawsDistinctSortedPixels() {
        var rng = SeededRandom(seed: 9)
        let picks = rng.sample(50, of: 60)
        #expect(picks.count == 50 && Set(picks).count == 50 && picks == picks.sorted() && picks.allSatisfy { $0 < 60 })
    }
}
