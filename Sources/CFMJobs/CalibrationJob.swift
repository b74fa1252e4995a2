import CFMData
import CFMDetector
import CFMTensor
import CFMTraining
import Foundation

/// The pass/reject threshold of a bundle from nominal parts it was not trained on, stored in
/// the manifest with the score distribution it came from, the split it scored and — when asked
/// to change it — the aggregation it was computed with.
///
/// Which parts (`CalibrationSplit`): `validation/good` where the layout has that split
/// (MVTec 3D-AD); otherwise the `train/good` parts the bundle's manifest records as held out
/// from training (`cfm train --hold-out N`). The Eyecandies layout has no validation split,
/// and neither alternative is honest: the parts the mappers were trained on score lower than
/// unseen nominal parts (the threshold would reject more good parts than the rate promises),
/// and `test/good` is what the evaluation then judges the threshold on.
public enum CalibrationJob {
    public struct Options: Sendable {
        /// Class directory in MVTec 3D-AD or Eyecandies layout (DATASET/CLASS).
        public var data: URL
        /// The model bundle (its manifest sets tier, BatchNorm mode and preprocessing).
        public var model: URL
        /// The extractor weights the bundle was trained with.
        public var extractors: URL
        /// Target fraction of nominal parts rejected.
        public var falseRejectRate = 0.01
        /// Unit of the dataset's XYZ values.
        public var unit: LengthUnit = .m
        /// The parts to score; nil = `validation` when the layout has it, else `heldOut`.
        public var split: CalibrationSplit? = nil
        /// The aggregation to calibrate and serve with, written into the manifest's `scoring`;
        /// nil = the bundle's.
        public var aggregation: ScoringDefinition.Aggregation? = nil
        /// Precision to score and record in the manifest; nil = the bundle's (fp32 when unrecorded).
        public var precision: Precision?

        public init(data: URL, model: URL, extractors: URL) {
            (self.data, self.model, self.extractors) = (data, model, extractors)
        }
    }

    /// Checks that the split can support the rate before anything is scored, scores it, writes
    /// the calibration, the aggregation and the precision it was scored at into the manifest and
    /// returns the calibration.
    public static func run(_ options: Options, progress: ProgressHandler? = nil) throws -> ModelManifest.Calibration {
        guard ModelBundle.hasManifest(options.model) else {
            throw JobError("\(options.model.relativePath): no \(BundleFile.manifest) — not a model bundle written by cfm train")
        }
        let split = try options.split ?? MVTec3DClass(directory: options.data).layout.defaultCalibrationSplit
        let samples = try calibrationSamples(options.data, split, model: options.model)
        try Calibrator.requireSupport(samples: samples.count, falseRejectRate: options.falseRejectRate)
        let loaded = try DetectorWeights.load(extractors: options.extractors, model: options.model,
                                              precision: options.precision.map { .run($0) } ?? .bundle)
        guard var manifest = loaded.manifest else { preconditionFailure("a bundle with a manifest loads with it") }
        if let aggregation = options.aggregation {
            var scoring = manifest.scoringDefinition
            scoring.aggregation = aggregation
            manifest.scoring = scoring
        }
        let detector = AnomalyDetector(weights: DetectorWeights(tier: loaded.tier, vit: loaded.vit, pointMAE: loaded.pointMAE,
                                                                scorer: loaded.scorer, manifest: manifest,
                                                                precision: loaded.precision))
        let preprocessor = detector.weights.preprocessor
        var scores: [Float] = []
        for (i, sample) in samples.enumerated() {
            let (frame, _) = try preprocessor(sample, unit: options.unit)
            var times = StageTimes()
            scores.append(try detector.detect(frame.input, times: &times).0.score)
            progress?(JobProgress(phase: "calibrate", done: i + 1, total: samples.count,
                                  status: String(format: "%@ %.4f", "\(sample.split.rawValue)/\(sample.key)", scores[i])))
        }
        var calibration = try Calibrator.calibrate(scores: scores, falseRejectRate: options.falseRejectRate)
        calibration.split = split
        manifest.calibration = calibration
        manifest.precision = detector.weights.precision
        try ModelBundle.update(manifest, in: options.model)
        return calibration
    }

    /// The nominal parts of `split`: `validation/good`, or the `train/good` parts the manifest of
    /// `model` records as held out from training (each must exist in `classDirectory`).
    static func calibrationSamples(_ classDirectory: URL, _ split: CalibrationSplit, model: URL) throws -> [DatasetSample] {
        switch split {
        case .validation:
            let dataset = try MVTec3DClass(directory: classDirectory)
            guard dataset.layout.splits.contains(.validation) else {
                throw JobError("\(classDirectory.relativePath): the \(dataset.layout.rawValue) layout has no validation split; "
                               + "calibrate on parts held out from training (cfm train --hold-out N, then --calibration-split held_out)")
            }
            return try datasetSamples(classDirectory, .validation, nominalOnly: true)
        case .heldOut:
            let manifest = try ModelBundle.manifest(at: model, extractors: nil)
            guard let heldOut = manifest.training.selection?.heldOutIDs, !heldOut.isEmpty else {
                throw JobError("\(model.relativePath): its manifest records no training parts held out for calibration "
                               + "(train with cfm train --hold-out N)")
            }
            let byID = Dictionary(uniqueKeysWithValues: try datasetSamples(classDirectory, .train, nominalOnly: true).map { ($0.id, $0) })
            return try heldOut.map { id in
                guard let sample = byID[id] else {
                    throw JobError("\(classDirectory.relativePath): no train/good/\(id), which \(model.relativePath) held out "
                                   + "for calibration (trained on another dataset?)")
                }
                return sample
            }
        }
    }
}

extension DatasetLayout {
    /// The calibration split of this layout when none is asked for: `validation` where the
    /// layout has one, else the parts held out from training.
    public var defaultCalibrationSplit: CalibrationSplit {
        splits.contains(.validation) ? .validation : .heldOut
    }
}
