import CFMData
import CFMDetector
import CFMJobs
import CFMModels
import CFMTensor
import CFMTestSupport
import CFMTraining
import Foundation
import Testing

/// A small synthetic cookie class and seeded extractor weights of the real architectures,
/// holding only what the tiny tier reads (block 0 of each extractor), made once per run.
enum Fixture {
    static let directory: URL = {
        let dir = path()
        try? FileManager.default.removeItem(at: dir)
        atexit { try? FileManager.default.removeItem(at: Fixture.path()) }
        do {
            _ = try SyntheticDataset.generate(.init(size: 128, seed: 5, classes: [.cookie], trainCount: 3, validationCount: 2,
                                                    testCountPerType: 1), to: dir.appendingPathComponent("data"))
            try SeededWeightFiles.writeExtractors(seed: 0, for: .tiny, to: dir.appendingPathComponent("extractors"))
        } catch {
            fatalError("cannot make the jobs fixture: \(error)")
        }
        return dir
    }()
    /// This process's fixture directory.
    static func path() -> URL { FileManager.default.temporaryDirectory.appendingPathComponent("cfm-jobs-test-\(getpid())") }
    static var data: URL { directory.appendingPathComponent("data/cookie") }
    static var extractors: URL { directory.appendingPathComponent("extractors") }
}

@Suite(.serialized) struct JobsTests {
    /// Train → calibrate → evaluate through the jobs, with a non-default preprocessing that
    /// the bundle must carry to calibration and evaluation.
    @Test func trainCalibrateEvaluate() throws {
        let work = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let model = work.appendingPathComponent("model")
        var training = TrainingJob.Options(data: Fixture.data, extractors: Fixture.extractors, out: model, tier: .tiny,
                                           cache: work.appendingPathComponent("cache"))
        (training.epochs, training.pixelsPerSample, training.batchSize) = (2, 64, 2)
        training.preprocessing.background.seed = 3
        var phases: [String] = []
        let manifest = try TrainingJob.run(training) { phases.append($0.phase) }
        #expect(phases.filter { $0 == "features" }.count == 3 && phases.filter { $0 == "train" }.count == 2)
        #expect(manifest.tier == .tiny && manifest.className == "cookie" && manifest.training.samples == 3)
        #expect(manifest.preprocessing == training.preprocessing && manifest.scoringDefinition == ScoringDefinition())
        #expect(manifest.extractors.count == 2 && manifest.extractors.allSatisfy { $0.checksum.hasPrefix("sha256:") })
        #expect(manifest.training.finalLoss.isFinite && manifest.training.extractedSamples == 3)

        var calibrationOptions = CalibrationJob.Options(data: Fixture.data, model: model, extractors: Fixture.extractors)
        calibrationOptions.falseRejectRate = 0.5
        let calibration = try CalibrationJob.run(calibrationOptions)
        #expect(calibration.samples == 2 && calibration.threshold >= calibration.min && calibration.threshold <= calibration.max)
        #expect(try ModelBundle.manifest(at: model, extractors: Fixture.extractors).calibration == calibration)
        // The detector a command loads scores with the bundle's preprocessing, not the defaults.
        #expect(try DetectorWeights.load(extractors: Fixture.extractors, model: model).preprocessing.background.seed == 3)

        let out = work.appendingPathComponent("eval")
        let result = try EvaluationJob.run(.init(data: Fixture.data, scorer: .model(bundle: model, extractors: Fixture.extractors), out: out))
        let samples = try datasetSamples(Fixture.data, .test)
        #expect(result.scorerName == "tiny" && result.trainedClass == nil && result.className == "cookie")
        #expect(result.report.overall.samples == samples.count && result.scores.count == samples.count)
        #expect(result.report.overall.imageAUROC != nil && result.frameMs.count == samples.count)
        for sample in samples {
            #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("maps/\(sample.key).tiff").path))
            // The overlay is a panel of three sensor-resolution tiles.
            let panel = try PNGFile.readRGB(out.appendingPathComponent("overlays/\(sample.key).png"))
            let rgb = try PNGFile.readRGB(sample.rgb)
            #expect(panel.width > 3 * rgb.width && panel.height > rgb.height)
        }
        for file in ["metrics.json", "scores.json", EvaluationPage.pageFile, EvaluationPage.rocFile] {
            #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent(file).path))
        }
        let metrics = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("metrics.json")))
            as? [String: Any])
        #expect(metrics["gt_resize"] as? String == GroundTruthResampling.official.summary(size: 224))
        // Calibrated: the rates at the threshold, over every test sample.
        let rates = try #require(metrics["at_threshold"] as? [String: Any])
        let counted = ["rejected_defective", "passed_defective", "rejected_good", "passed_good"].compactMap { rates[$0] as? Int }
        #expect(counted.count == 4 && counted.reduce(0, +) == samples.count)
        #expect((rates["threshold"] as? Double).map { Float($0) } == calibration.threshold)
        let html = try String(contentsOf: out.appendingPathComponent(EvaluationPage.pageFile), encoding: .utf8)
        #expect(html.contains("overlays/\(samples[0].key).png"))
    }

    /// A rate the validation split cannot support is refused before anything is loaded or
    /// scored: here the extractors do not even exist.
    @Test func calibrationChecksTheSplitFirst() throws {
        let work = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let model = work.appendingPathComponent("model")
        let manifest = ModelManifest(tier: .tiny, className: "cookie", rgbDim: 6, xyzDim: 4, hiddenDim: 5, batchnorm: .frame,
                                     preprocessing: PreprocessOptions(), extractors: [], mappers: [],
                                     training: .init(samples: 1, shots: nil, epochs: 1, batchSize: 1, learningRate: 1e-3,
                                                     pixelsPerSample: 0, seed: 0, finalLoss: 1, finalCosine3D: 0, finalCosine2D: 0,
                                                     seconds: 0),
                                     createdAt: "", toolVersion: "test")
        try ModelBundle.write(manifest, rgbToXYZ: .initial(inFeatures: 6, outFeatures: 4, seed: 0),
                              xyzToRGB: .initial(inFeatures: 4, outFeatures: 6, seed: 1), to: model)
        var options = CalibrationJob.Options(data: Fixture.data, model: model, extractors: work.appendingPathComponent("missing"))
        options.falseRejectRate = 0.1
        #expect(throws: CalibrationError.tooFewSamples(samples: 2, needed: 10, rate: 0.1)) { try CalibrationJob.run(options) }
    }

    @Test func evaluationOfTheBaseline() throws {
        let work = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let result = try EvaluationJob.run(.init(data: Fixture.data, scorer: .baseline(shots: 2), out: work))
        #expect(result.scorerName == "baseline" && result.scores.count == result.report.overall.samples)
        var bad = EvaluationJob.Options(data: Fixture.data, scorer: .baseline(shots: 2), out: work)
        bad.proThresholds = 1
        #expect(throws: JobError("--pro-thresholds must be 0 (exact) or at least 2")) { try EvaluationJob.run(bad) }
    }

    @Test func trainingRefusesTooManyShots() throws {
        let work = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        var options = TrainingJob.Options(data: Fixture.data, extractors: Fixture.extractors, out: work.appendingPathComponent("m"),
                                          tier: .tiny, cache: work.appendingPathComponent("cache"))
        options.shots = 4
        #expect(throws: JobError.self) { try TrainingJob.run(options) }
        #expect(!FileManager.default.fileExists(atPath: work.appendingPathComponent("m").path))
    }
}
