import CFMData
import CFMDetector
import CFMTensor
import CFMTraining
import Foundation

/// The pass/reject threshold of a bundle from its class's nominal validation parts, stored
/// in the manifest with the score distribution it came from.
public enum CalibrationJob {
    public struct Options: Sendable {
        /// Class directory in MVTec 3D-AD layout (DATASET/CLASS); `validation/good` is scored.
        public var data: URL
        /// The model bundle (its manifest sets tier, BatchNorm mode and preprocessing).
        public var model: URL
        /// The extractor weights the bundle was trained with.
        public var extractors: URL
        /// Target fraction of nominal parts rejected.
        public var falseRejectRate = 0.01
        /// Unit of the dataset's XYZ values.
        public var unit: LengthUnit = .m
        /// Precision to score and record in the manifest; nil = the bundle's (fp32 when unrecorded).
        public var precision: Precision?

        public init(data: URL, model: URL, extractors: URL) {
            (self.data, self.model, self.extractors) = (data, model, extractors)
        }
    }

    /// Checks that the validation split can support the rate before anything is scored, scores
    /// it, writes the calibration and the precision it was scored at into the manifest and returns it.
    public static func run(_ options: Options, progress: ProgressHandler? = nil) throws -> ModelManifest.Calibration {
        guard ModelBundle.hasManifest(options.model) else {
            throw JobError("\(options.model.relativePath): no \(BundleFile.manifest) — not a model bundle written by cfm train")
        }
        let samples = try datasetSamples(options.data, .validation, nominalOnly: true)
        try Calibrator.requireSupport(samples: samples.count, falseRejectRate: options.falseRejectRate)
        let detector = try AnomalyDetector.load(extractors: options.extractors, model: options.model,
                                                precision: options.precision.map { .run($0) } ?? .bundle)
        let preprocessor = detector.weights.preprocessor
        var scores: [Float] = []
        for (i, sample) in samples.enumerated() {
            let (frame, _) = try preprocessor(sample, unit: options.unit)
            var times = StageTimes()
            scores.append(try detector.detect(frame.input, times: &times).0.score)
            progress?(JobProgress(phase: "calibrate", done: i + 1, total: samples.count,
                                  status: String(format: "%@ %.4f", sample.key, scores[i])))
        }
        guard var manifest = detector.manifest else { preconditionFailure("a bundle with a manifest loads with it") }
        let calibration = try Calibrator.calibrate(scores: scores, falseRejectRate: options.falseRejectRate)
        manifest.calibration = calibration
        manifest.precision = detector.weights.precision
        try ModelBundle.update(manifest, in: options.model)
        return calibration
    }
}
