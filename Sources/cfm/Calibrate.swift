import ArgumentParser
import CFMData
import CFMDetector
import CFMTraining
import CFMModels
import Yams
import Foundation

/// `cfm calibrate`: the pass/reject threshold from the nominal validation split.
struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Set the bundle's pass/reject threshold from nominal validation parts.",
        discussion: "Scores DATASET/CLASS/validation/good and stores the threshold and the score distribution in manifest.yaml.")

    @Option(help: "Class directory in MVTec 3D-AD layout (DATASET/CLASS).") var data: String
    @Option(help: "Model bundle directory (cfm train).") var model: String
    @Option(help: "Directory with the extractor weights the bundle was trained with.") var extractors: String
    @Option(help: "Target fraction of nominal parts rejected.") var falseRejectRate = 0.01
    @OptionGroup var preprocess: PreprocessFlags

    func run() throws {
        let bundle = URL(fileURLWithPath: model)
        let settings = try bundleSettings(bundle)
        let samples = try datasetSamples(data, .validation, nominalOnly: true)
        let detector = try AnomalyDetector.load(extractors: URL(fileURLWithPath: extractors), model: bundle,
                                                tier: settings.tier, batchNorm: settings.batchnorm)
        let progress = Progress("calibrate", total: samples.count)
        var scores: [Float] = []
        for (i, sample) in samples.enumerated() {
            let (frame, _) = try preprocess.preprocessor(sample, unit: preprocess.unit)
            var times = StageTimes()
            scores.append(try detector.detect(frame.input, times: &times).0.score)
            progress.update(i + 1, String(format: "%@ %.4f", sample.key, scores.last!))
        }
        var updated = detector.manifest!
        updated.calibration = try Calibrator.calibrate(scores: scores, falseRejectRate: falseRejectRate)
        try ModelBundle.update(updated, in: bundle)
        let c = updated.calibration!
        print(String(format: "threshold %.4f for a false-reject rate of %g on %d nominal parts (scores min %.4f, median %.4f, p99 %.4f, max %.4f)",
                     c.threshold, c.falseRejectRate, c.samples, c.min, c.median, c.p99, c.max))
    }
}

/// The tier and BatchNorm mode a bundle was trained with (so commands that take a bundle
/// need neither flag).
func bundleSettings(_ bundle: URL) throws -> (tier: Tier, batchnorm: BatchNormMode) {
    struct Settings: Decodable { var tier: Tier, batchnorm: BatchNormMode }
    let url = bundle.appendingPathComponent(BundleFile.manifest)
    do {
        let s = try YAMLDecoder().decode(Settings.self, from: String(contentsOf: url, encoding: .utf8))
        return (s.tier, s.batchnorm)
    } catch {
        throw BundleError.unreadable(file: url.path, reason: "no readable manifest with a tier (\(error))")
    }
}
