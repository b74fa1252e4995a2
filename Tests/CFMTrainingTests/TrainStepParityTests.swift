import CFMDetector
import CFMModels
import CFMTensor
import CFMTestSupport
import Testing
@testable import CFMTraining

/// Two Adam steps of the joint mapper loss against PyTorch
/// (`tools/reference/make_train_fixtures.py`, computed in float64 and rounded once).
@Suite struct TrainStepParityTests {
    let tolerance: Float = 1e-5
    static let specs = [(name: "mapper_2d_to_3d", inFeatures: 12, outFeatures: 8),
                         (name: "mapper_3d_to_2d", inFeatures: 8, outFeatures: 12)]

    /// `prefix.NAME.KEY` for one mapper, in `FeatureMapper.parameterShapes` order.
    static func parameters(_ fx: SafeTensors, _ prefix: String, mapper m: Int) throws -> [Tensor] {
        let (name, i, o) = specs[m]
        return try FeatureMapper.parameterShapes(inFeatures: i, outFeatures: o).map { key, shape in
            try fx.tensor("\(prefix).\(name).\(key)", shape: shape)
        }
    }

    static func combinations(_ fx: SafeTensors, sample s: Int, _ path: String) throws -> PixelCombinations {
        let offsets = try fx.tensor("s\(s).\(path)_offsets").scalars.map { Int($0) }
        let sources = try fx.tensor("s\(s).\(path)_sources").scalars.map { Int($0) }
        let weights = try fx.tensor("s\(s).\(path)_weights").scalars
        let pixels = offsets.count - 1
        let terms = (0..<pixels).map { p in (offsets[p]..<offsets[p + 1]).map { (source: sources[$0], weight: weights[$0]) } }
        return PixelCombinations(size: 4, pixels: Array(0..<pixels), terms: terms)
    }

    /// Worst relative error over a mapper's parameters against `prefix.*`.
    static func worstError(_ mapper: FeatureMapper, _ fx: SafeTensors, _ prefix: String, mapper m: Int) throws -> Float {
        try zip(mapper.parameters, parameters(fx, prefix, mapper: m)).map { actual, expected in
            relativeError(Tensor(shape: expected.shape, scalars: actual), expected)
        }.max()!
    }

    static func batch(_ fx: SafeTensors) throws -> [TrainingSample] {
        try (0..<3).map { s in
            TrainingSample(rgbTokens: try fx.tensor("s\(s).tokens", shape: [6, 12]),
                           pointFeatures: try fx.tensor("s\(s).points", shape: [5, 8]),
                           rgb: try combinations(fx, sample: s, "rgb"), xyz: try combinations(fx, sample: s, "xyz"))
        }
    }

    static func mappers(_ fx: SafeTensors, _ prefix: String) throws -> (FeatureMapper, FeatureMapper) {
        try (0..<2).map { m in
            FeatureMapper(inFeatures: specs[m].inFeatures, outFeatures: specs[m].outFeatures,
                          parameters: try parameters(fx, prefix, mapper: m).map(\.scalars))
        }.pair
    }

    @Test func gradientsMatchPyTorch() throws {
        let fx = try Fixtures.open("train_step_tiny.safetensors")
        for (weights, grad) in [("before", "grad"), ("after", "grad2")] {
            let (a, b) = try Self.mappers(fx, weights)
            let batch = try Self.batch(fx), step = StepGradients(rgbToXYZ: a, xyzToRGB: b, batch: batch)
            for s in batch { _ = step.backpropagate(sample: s, rgb: s.rgb, xyz: s.xyz, batchPixels: 27) }
            let gradients = step.reduced()
            for m in 0..<2 {
                let unflattened = FeatureMapper(inFeatures: Self.specs[m].inFeatures, outFeatures: Self.specs[m].outFeatures,
                                                flat: gradients[m])
                let error = try Self.worstError(unflattened, fx, grad, mapper: m)
                #expect(error <= tolerance, "\(grad) \(Self.specs[m].name) relative error \(error)")
            }
        }
    }

    @Test func twoAdamStepsMatchPyTorch() throws {
        let fx = try Fixtures.open("train_step_tiny.safetensors")
        let batch = try Self.batch(fx)
        let (a, b) = try Self.mappers(fx, "before")
        var trainer = MapperTrainer(rgbToXYZ: a, xyzToRGB: b, pixelsPerSample: 0, seed: 0, learningRate: 1e-3)

        for (step, suffix) in ["", "2"].enumerated() {
            let metrics = trainer.step(batch)
            #expect(metrics.pixels == 27)
            for (value, key) in [(metrics.loss, "loss"), (metrics.cosine3D, "cos3d"), (metrics.cosine2D, "cos2d")] {
                let expected = try fx.tensor(key + suffix).scalars[0]
                #expect(abs(value - expected) <= tolerance * abs(expected),
                        "step \(step + 1) \(key): \(value) vs \(expected)")
            }
            let prefix = "after" + suffix
            let e23 = try Self.worstError(trainer.rgbToXYZ, fx, prefix, mapper: 0)
            let e32 = try Self.worstError(trainer.xyzToRGB, fx, prefix, mapper: 1)
            #expect(e23 <= tolerance, "step \(step + 1) mapper_2d_to_3d relative error \(e23)")
            #expect(e32 <= tolerance, "step \(step + 1) mapper_3d_to_2d relative error \(e32)")
        }
    }
}

extension Array {
    fileprivate var pair: (Element, Element) { (self[0], self[1]) }
}
