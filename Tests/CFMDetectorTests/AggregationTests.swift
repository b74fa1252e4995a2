import CFMDetector
import CFMModels
import CFMTensor
import CFMTestSupport
import Foundation
import Testing

/// The aggregations of ψ2D and ψ3D and their record in the manifest.
@Suite struct AggregationTests {
    // A 4×4 pair with masked (zero) pixels where both are 0, and pixels where only one side is high.
    let psi2d = Tensor(shape: [4, 4], scalars: [0, 0, 0.5, 1.5, 0.25, 1, 0, 0, 0.75, 0.5, 2, 0.125, 0, 0.5, 1, 0.25])
    let psi3d = Tensor(shape: [4, 4], scalars: [0, 0.5, 0.25, 0.5, 1, 0.25, 0, 0, 0.25, 1.5, 2, 0.5, 0, 0, 1, 0.75])

    @Test func eachAggregationCombinesPerPixel() {
        func combined(_ a: ScoringDefinition.Aggregation) -> [Float] { a.combine(psi2d: psi2d, psi3d: psi3d).scalars }
        let pairs = Array(zip(psi2d.scalars, psi3d.scalars))
        #expect(combined(.product) == pairs.map { $0 * $1 })
        #expect(combined(.sum) == pairs.map { $0 + $1 })
        #expect(combined(.max) == pairs.map { max($0, $1) })
        #expect(combined(.only2D) == psi2d.scalars && combined(.only3D) == psi3d.scalars)
        // Pixels masked in both (0 and 0) stay 0 under every aggregation.
        for a in ScoringDefinition.Aggregation.allCases {
            #expect(combined(a)[0] == 0 && combined(a)[6] == 0 && combined(a)[12] == 0)
            #expect(a.combine(psi2d: psi2d, psi3d: psi3d).shape == [4, 4])
        }
    }

    /// `apply` is the aggregation, the smoothing and the image score in that order; for the
    /// product, exactly what the detector computed before there were variants.
    @Test func applySmoothsAndScoresTheCombination() {
        for a in ScoringDefinition.Aggregation.allCases {
            let (map, score) = ScoringDefinition(aggregation: a).apply(psi2d: psi2d, psi3d: psi3d, size: 4)
            let expected = AnomalyScoring.smooth(a.combine(psi2d: psi2d, psi3d: psi3d), size: 4)
            #expect(map.scalars == expected.scalars && score == AnomalyScoring.imageScore(expected))
        }
        let product = Tensor(shape: [4, 4], scalars: zip(psi2d.scalars, psi3d.scalars).map(*))
        #expect(ScoringDefinition().apply(psi2d: psi2d, psi3d: psi3d, size: 4).map.scalars
                == AnomalyScoring.smooth(product, size: 4).scalars)
        // The variants rank pixels differently: pixel 1 (ψ3D only) is 0 in the product and 2D-only maps.
        #expect(ScoringDefinition.Aggregation.product.combine(psi2d: psi2d, psi3d: psi3d).scalars[1] == 0)
        #expect(ScoringDefinition.Aggregation.max.combine(psi2d: psi2d, psi3d: psi3d).scalars[1] == 0.5)
    }

    /// The aggregation, the calibration split and the training selection are written to and
    /// read back from the manifest, by their names.
    @Test func theManifestRecordsAggregationSelectionAndSplit() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let selection = ModelManifest.SampleSelection(rule: .random, seed: 11, sampleIDs: ["003", "017"], heldOutIDs: ["005"])
        var manifest = ModelManifest(
            tier: .tiny, className: "demo", rgbDim: 6, xyzDim: 4, hiddenDim: 5, batchnorm: .frame,
            preprocessing: PreprocessOptions(), scoring: ScoringDefinition(aggregation: .only3D), extractors: [], mappers: [],
            training: .init(samples: 2, shots: 2, epochs: 1, batchSize: 1, learningRate: 1e-3, pixelsPerSample: 0, seed: 11,
                            finalLoss: 1, finalCosine3D: 0, finalCosine2D: 0, seconds: 0, selection: selection),
            createdAt: "", toolVersion: "test")
        manifest.calibration = .init(threshold: 2, falseRejectRate: 0.5, samples: 1, min: 2, median: 2, p99: 2, max: 2, split: .heldOut)
        let bundle = dir.appendingPathComponent("model")
        try ModelBundle.write(manifest, rgbToXYZ: .initial(inFeatures: 6, outFeatures: 4, seed: 0),
                              xyzToRGB: .initial(inFeatures: 4, outFeatures: 6, seed: 1), to: bundle)
        let text = try String(contentsOf: bundle.appendingPathComponent(BundleFile.manifest), encoding: .utf8)
        #expect(text.contains("aggregation: 3d_only") && text.contains("rule: random") && text.contains("split: held_out"))
        let read = try ModelBundle.manifest(at: bundle, extractors: nil)
        #expect(read.scoringDefinition.aggregation == .only3D && read.training.selection == selection)
        #expect(read.calibration?.split == .heldOut)

        // Without these optional entries (bundles written before them; nil is not written) it still loads.
        var older = read
        older.training.selection = nil
        older.calibration?.split = nil
        try ModelBundle.update(older, in: bundle)
        let olderText = try String(contentsOf: bundle.appendingPathComponent(BundleFile.manifest), encoding: .utf8)
        #expect(!olderText.contains("selection") && !olderText.contains("split"))
        let old = try ModelBundle.manifest(at: bundle, extractors: nil)
        #expect(old.training.selection == nil && old.calibration?.split == nil && old.training.seed == 11)
    }
}
