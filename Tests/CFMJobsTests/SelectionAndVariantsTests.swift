import CFMData
import CFMDetector
import CFMJobs
import CFMTestSupport
import CFMTraining
import Foundation
import Testing

extension Fixture {
    /// The same generator's parts in the Eyecandies layout (no validation split): 4 nominal
    /// training parts, one good and one bad test part.
    static let eyecandies: URL = {
        let root = directory.appendingPathComponent("eyecandies")
        do {
            try SyntheticDataset.generateEyecandies(.init(size: 128, seed: 6, classes: [.cookie], trainCount: 4, validationCount: 0,
                                                          testCountPerType: 1), to: root)
        } catch {
            fatalError("cannot make the Eyecandies fixture: \(error)")
        }
        return root.appendingPathComponent("cookie")
    }()
}

/// Few-shot draws recorded in the bundle, calibration on parts held out from training
/// (Eyecandies) and aggregation variants compared in one evaluation pass. Tiny tier, as
/// `JobsTests`, and one training run for all three: in a debug build each frame costs tens of
/// seconds on a loaded machine.
@Suite(.serialized) struct SelectionAndVariantsTests {
    /// 4 Eyecandies training parts: 2 held out for calibration, 1 of the other 2 drawn for
    /// training. Calibrating with `max` then makes a plain evaluation equal the `max` variant of
    /// the `--aggregations all` evaluation before it.
    @Test func fewShotHeldOutCalibrationAndAggregationVariants() throws {
        let work = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let data = Fixture.eyecandies, model = work.appendingPathComponent("model")
        var training = TrainingJob.Options(data: data, extractors: Fixture.extractors, out: model, tier: .tiny,
                                           cache: work.appendingPathComponent("cache"))
        (training.epochs, training.pixelsPerSample, training.batchSize) = (1, 64, 1)
        (training.shots, training.holdOut, training.seed) = (1, 2, 9)
        var extracted: [String] = []
        let manifest = try TrainingJob.run(training) { if $0.phase == "features" { extracted.append($0.status) } }
        let ids = try datasetSamples(data, .train, nominalOnly: true).map(\.id)
        let selection = try #require(manifest.training.selection)
        #expect(selection == (try SampleDraw.select(ids: ids, shots: 1, rule: .random, holdOut: 2, seed: 9)))
        #expect(selection.rule == .random && selection.seed == 9 && selection.sampleIDs.count == 1 && selection.heldOutIDs.count == 2)
        #expect(Set(selection.heldOutIDs).isDisjoint(with: selection.sampleIDs) && manifest.training.samples == 1)
        #expect(try ModelBundle.manifest(at: model, extractors: nil).training.selection == selection)
        // Exactly the drawn sample was extracted and trained on.
        #expect(extracted == selection.sampleIDs.map { "\(MVTec3DClass.nominal)/\($0)" })

        var all = EvaluationJob.Options(data: data, scorer: .model(bundle: model, extractors: Fixture.extractors),
                                        out: work.appendingPathComponent("all"))
        all.aggregations = try EvaluationJob.aggregations(named: "all")
        let compared = try EvaluationJob.run(all)
        #expect(compared.aggregation == .product && Set(compared.variants.keys) == Set(ScoringDefinition.Aggregation.allCases))
        #expect(compared.variants[.product]?.overall == compared.report.overall && compared.report.overall.samples == 2)
        let metrics = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: all.out.appendingPathComponent("metrics.json")))
            as? [String: Any])
        let variants = try #require(metrics["variants"] as? [String: [String: Any]])
        #expect(metrics["aggregation"] as? String == "product" && Set(variants.keys) == ["product", "sum", "max", "2d_only", "3d_only"])
        #expect(variants["product"]?["p_auroc"] as? Double == metrics["p_auroc"] as? Double)
        #expect(variants["max"]?["by_defect"] is [String: Any])

        // No validation split: calibrated on the held-out parts, with `max` stored in the bundle.
        var calibration = CalibrationJob.Options(data: data, model: model, extractors: Fixture.extractors)
        (calibration.falseRejectRate, calibration.aggregation) = (0.5, .max)
        var scored: [String] = []
        let calibrated = try CalibrationJob.run(calibration) { scored.append(String($0.status.split(separator: " ")[0])) }
        #expect(calibrated.split == .heldOut && calibrated.samples == 2)
        #expect(scored == selection.heldOutIDs.map { "train/good/\($0)" })
        let recalibrated = try ModelBundle.manifest(at: model, extractors: Fixture.extractors)
        #expect(recalibrated.scoringDefinition.aggregation == .max && recalibrated.calibration == calibrated)
        calibration.split = .validation
        #expect(throws: JobError.self) { try CalibrationJob.run(calibration) }

        let single = try EvaluationJob.run(.init(data: data, scorer: .model(bundle: model, extractors: Fixture.extractors),
                                                 out: work.appendingPathComponent("max")))
        #expect(single.aggregation == .max && single.variants.isEmpty)
        #expect(single.report.overall == compared.variants[.max]?.overall)
        #expect(single.report.byDefect == compared.variants[.max]?.byDefect)
    }

    @Test func aggregationListsAreParsed() throws {
        #expect(try EvaluationJob.aggregations(named: "sum, 2d_only,sum") == [.sum, .only2D])
        #expect(throws: JobError.self) { try EvaluationJob.aggregations(named: "sum,mean") }
        var baseline = EvaluationJob.Options(data: Fixture.data, scorer: .baseline(shots: nil), out: URL(fileURLWithPath: "/nonexistent"))
        baseline.aggregations = [.sum]
        #expect(throws: JobError.self) { try baseline.validate() }
    }

    /// A bundle that held nothing out cannot be calibrated on Eyecandies; refused before the
    /// extractors are loaded (here they do not exist), naming the way out.
    @Test func withoutHeldOutPartsEyecandiesCalibrationIsRefused() throws {
        let work = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let model = work.appendingPathComponent("model")
        let manifest = ModelManifest(tier: .tiny, className: "cookie", rgbDim: 6, xyzDim: 4, hiddenDim: 5, batchnorm: .frame,
                                     preprocessing: PreprocessOptions(), extractors: [], mappers: [],
                                     training: .init(samples: 4, shots: nil, epochs: 1, batchSize: 1, learningRate: 1e-3,
                                                     pixelsPerSample: 0, seed: 0, finalLoss: 1, finalCosine3D: 0, finalCosine2D: 0,
                                                     seconds: 0,
                                                     selection: .init(rule: .all, seed: 0, sampleIDs: ["000", "001", "002", "003"],
                                                                      heldOutIDs: [])),
                                     createdAt: "", toolVersion: "test")
        try ModelBundle.write(manifest, rgbToXYZ: .initial(inFeatures: 6, outFeatures: 4, seed: 0),
                              xyzToRGB: .initial(inFeatures: 4, outFeatures: 6, seed: 1), to: model)
        let options = CalibrationJob.Options(data: Fixture.eyecandies, model: model, extractors: work.appendingPathComponent("missing"))
        let error = try #require(throws: JobError.self) { try CalibrationJob.run(options) }
        #expect(error.description.contains("records no training parts held out") && error.description.contains("--hold-out N"))
    }
}
