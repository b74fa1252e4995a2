import CFMData
import CFMDetector
import CFMModels
import CFMTensor
import Dispatch
import Foundation

/// A model bundle (or the non-learned baseline) on the labelled test split of one class: the
/// MVTec 3D-AD metrics, and every map, score and overlay for a person to look at.
///
/// Writes `out`/metrics.json (overall and per defect type; with a calibrated bundle also
/// `at_threshold`, the confusion matrix and false-reject and miss rates at its threshold),
/// scores.json ({"<defect>/<id>": score}), maps/<defect>/<id>.tiff (float32 anomaly map),
/// overlays/<defect>/<id>.png (an `OverlayPanel` at the sensor's resolution: RGB | height above
/// the plane | heat map anchored at the threshold with the defect regions boxed, ground-truth
/// contour in green) and report.html with roc.png and pro.png (`EvaluationPage`).
public enum EvaluationJob {
    /// What scores the test frames.
    public enum Scorer: Sendable {
        /// A model bundle with the extractor weights it was trained with; its manifest sets the
        /// tier, BatchNorm mode, preprocessing and scoring.
        case model(bundle: URL, extractors: URL)
        /// Colour and height-above-plane distances from the first `shots` (nil: all) nominal
        /// training parts, with the default preprocessing.
        case baseline(shots: Int?)
    }

    public struct Options: Sendable {
        /// Class directory in MVTec 3D-AD layout (DATASET/CLASS); `test` is scored.
        public var data: URL
        public var scorer: Scorer
        /// Output directory.
        public var out: URL
        /// AUPRO thresholds: 0 = the exact curve; N ≥ 2 = the CFM authors' sampling of N.
        public var proThresholds = 0
        /// Unit of the dataset's XYZ values.
        public var unit: LengthUnit = .m
        /// Precision of a model's GEMM-heavy layers (the bundle's by default).
        public var precision: PrecisionChoice = .bundle

        public init(data: URL, scorer: Scorer, out: URL) { (self.data, self.scorer, self.out) = (data, scorer, out) }

        public func validate() throws {
            guard proThresholds == 0 || proThresholds >= 2 else { throw JobError("--pro-thresholds must be 0 (exact) or at least 2") }
            if case let .baseline(shots) = scorer, let shots, shots < 1 { throw JobError("--shots must be at least 1") }
        }
    }

    /// What an evaluation found (metrics.json holds the same and more).
    public struct Result: Sendable {
        public var className: String
        /// The tier of the bundle, or "baseline".
        public var scorerName: String
        /// The class the bundle was trained on, when it differs from the evaluated one.
        public var trainedClass: String?
        public var report: EvaluationReport
        /// "<defect>/<id>" → image score.
        public var scores: [String: Float]
        /// Per-frame preprocessing + detection time, milliseconds, in test order.
        public var frameMs: [Double]
        public var out: URL

        public var framesPerSecond: Double {
            let total = frameMs.reduce(0, +)
            return total > 0 ? 1000 * Double(frameMs.count) / total : 0
        }

        /// Why some metrics are undefined (nil when all are defined).
        public var undefinedMetrics: String? {
            let o = report.overall
            guard o.imageAUROC == nil || o.regions == 0 else { return nil }
            let missing = o.nominal == 0 ? "no good samples" : o.anomalous == 0 ? "no defective samples" : "no ground-truth regions"
            return "the test split has \(missing); undefined metrics are null"
        }
    }

    public static func run(_ options: Options, progress: ProgressHandler? = nil) throws -> Result {
        try options.validate()
        let started = Date()
        let samples = try datasetSamples(options.data, .test)
        let name = className(of: options.data)
        let scorer = try LoadedScorer(options, progress: progress)
        let preprocessor = scorer.preprocessor, size = preprocessor.options.size
        let outDir = options.out
        try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)

        var images: [EvaluatedImage] = [], scores: [String: Float] = [:], frameMs: [Double] = []
        var listed: [EvaluationPage.Sample] = []
        for (i, sample) in samples.enumerated() {
            var times = StageTimes()
            let frame: PreprocessedFrame, loaded: LoadedSample, detection: Detection
            do {
                (frame, loaded) = try times.measure("preprocess") { try preprocessor(sample, unit: options.unit) }
                detection = try scorer.detect(frame, times: &times)
            } catch {
                throw JobError("test/\(sample.key): \(error)")
            }
            frameMs.append(times.total)
            let mask = loaded.mask.evaluationMask(size: size)
            images.append(EvaluatedImage(defect: sample.defect, id: sample.id, score: detection.score,
                                         pixelMap: AnomalyScoring.pixelMap(detection.anomalyMap),
                                         regionMap: AnomalyScoring.regionMap(detection.anomalyMap),
                                         truth: GroundTruthRegions(mask: mask)))
            scores[sample.key] = detection.score

            for folder in ["maps", "overlays"] {
                try FileManager.default.createDirectory(at: outDir.appendingPathComponent(folder).appendingPathComponent(sample.defect),
                                                        withIntermediateDirectories: true)
            }
            try TIFFFile.write(detection.anomalyMap.reshaped([size, size, 1]),
                               to: outDir.appendingPathComponent("maps/\(sample.key).tiff"))
            let heights = frame.background?.plane.map { HeightField(cloud: loaded.cloud, unit: options.unit, plane: $0) }
            let panel = OverlayPanel.render(rgb: loaded.rgb, heights: heights, map: detection.anomalyMap, score: detection.score,
                                            threshold: scorer.threshold, truth: loaded.mask, title: sample.key)
            let picture = "overlays/\(sample.key).png"
            try PNGFile.write(panel, to: outDir.appendingPathComponent(picture), compression: .fast)
            listed.append(EvaluationPage.Sample(key: sample.key, defect: sample.defect, score: detection.score,
                                                anomalous: !sample.isNominal, image: picture))
            progress?(JobProgress(phase: "eval", done: i + 1, total: samples.count,
                                  status: String(format: "%@ score %.4f %.0f ms", sample.key, detection.score, times.total)))
        }

        let metricsStart = DispatchTime.now().uptimeNanoseconds
        let sampling: PROCurve.Sampling = options.proThresholds == 0 ? .exact : .thresholds(options.proThresholds)
        let report = EvaluationReport(images, sampling: sampling)
        let page = EvaluationPage(
            title: "\(name): \(scorer.name)",
            details: [("model", scorer.modelPath ?? "baseline"), ("data", options.data.standardizedFileURL.path),
                      ("ground truth", GroundTruthResampling.official.summary(size: size))],
            overall: report.overall, byDefect: report.byDefect, threshold: scorer.threshold, samples: listed,
            pro: try? PROCurve(maps: images.map(\.regionMap), truths: images.map(\.truth),
                               sampling: sampling, maxFPR: 0.3))
        let metricsSeconds = Double(DispatchTime.now().uptimeNanoseconds - metricsStart) / 1e9
        let trainedClass = scorer.manifest?.className
        let result = Result(className: name, scorerName: scorer.name, trainedClass: trainedClass == name ? nil : trainedClass,
                            report: report, scores: scores, frameMs: frameMs, out: outDir)

        let sorted = frameMs.sorted(), totalMs = frameMs.reduce(0, +)
        var metrics = report.overall.jsonObject
        metrics["class"] = name
        metrics.merge(scorer.description) { $1 }
        metrics["data"] = options.data.standardizedFileURL.path
        metrics["threshold"] = scorer.threshold.map { jsonNumber($0) } ?? NSNull()
        if let rates = page.rates { metrics["at_threshold"] = rates.jsonObject }
        metrics["pro_curve"] = options.proThresholds == 0 ? "exact" : "\(options.proThresholds) thresholds (CFM authors' sampling)"
        metrics["by_defect"] = report.byDefect.mapValues(\.jsonObject)
        metrics["samples_by_defect"] = Dictionary(grouping: samples, by: \.defect).mapValues(\.count)
        metrics["background_removal"] = preprocessor.options.removeBackground
        metrics["gt_resize"] = GroundTruthResampling.official.summary(size: size)
        metrics["map_normalisation"] = ["p_auroc": "map / sqrt(mean(map))", "aupro": "map / mean(non-zero map)"]
        metrics["timing"] = [
            "fps": result.framesPerSecond,
            "median_ms": sorted[sorted.count / 2], "mean_ms": totalMs / Double(frameMs.count),
            "metrics_s": metricsSeconds, "wall_s": Date().timeIntervalSince(started),
        ]
        try writeJSON(metrics, to: outDir.appendingPathComponent("metrics.json"))
        try writeJSON(scores.mapValues(jsonNumber), to: outDir.appendingPathComponent("scores.json"))
        try page.write(to: outDir)
        return result
    }
}

/// The scorer of a run, loaded: a detector on a bundle, or the fitted baseline.
private enum LoadedScorer {
    case crossmodal(AnomalyDetector, bundle: URL)
    case baseline(NominalBaseline, samples: Int)

    init(_ options: EvaluationJob.Options, progress: ProgressHandler?) throws {
        switch options.scorer {
        case let .model(bundle, extractors):
            guard ModelBundle.hasManifest(bundle) else {
                throw JobError("\(bundle.relativePath): no \(BundleFile.manifest) — not a model bundle written by cfm train")
            }
            self = .crossmodal(try AnomalyDetector.load(extractors: extractors, model: bundle, precision: options.precision), bundle: bundle)
        case let .baseline(shots):
            let samples = try trainingSamples(options.data, shots: shots)
            let preprocessor = Preprocessor()
            let frames = try samples.enumerated().map { i, sample in
                defer { progress?(JobProgress(phase: "baseline", done: i + 1, total: samples.count, status: sample.key)) }
                do { return try preprocessor(sample, unit: options.unit).0 } catch { throw JobError("train/\(sample.key): \(error)") }
            }
            self = .baseline(try NominalBaseline.fit(frames), samples: samples.count)
        }
    }

    var preprocessor: Preprocessor {
        switch self {
        case let .crossmodal(detector, _): detector.weights.preprocessor
        case .baseline: Preprocessor()
        }
    }

    var manifest: ModelManifest? {
        if case let .crossmodal(detector, _) = self { detector.manifest } else { nil }
    }

    func detect(_ frame: PreprocessedFrame, times: inout StageTimes) throws -> Detection {
        switch self {
        case let .crossmodal(detector, _): try detector.detect(frame.input, times: &times).0
        case let .baseline(baseline, _): try times.measure("baseline") { try baseline.detect(frame) }
        }
    }

    /// The bundle directory, nil for the baseline.
    var modelPath: String? {
        if case let .crossmodal(_, bundle) = self { bundle.standardizedFileURL.path } else { nil }
    }

    /// The calibrated threshold, if any (the baseline has none).
    var threshold: Float? { manifest?.calibration?.threshold }

    /// The tier, or "baseline".
    var name: String {
        switch self {
        case let .crossmodal(detector, _): detector.tier.rawValue
        case .baseline: "baseline"
        }
    }

    /// metrics.json entries saying what scored.
    var description: [String: Any] {
        switch self {
        case let .crossmodal(detector, bundle):
            return ["scorer": "crossmodal", "tier": detector.tier.rawValue, "batchnorm": detector.manifest?.batchnorm.rawValue ?? NSNull(),
                    "model": bundle.standardizedFileURL.path]
        case let .baseline(baseline, samples):
            func floats(_ v: SIMD3<Float>) -> [Any] { [jsonNumber(v.x), jsonNumber(v.y), jsonNumber(v.z)] }
            return ["scorer": "baseline", "tier": NSNull(), "batchnorm": NSNull(), "model": NSNull(),
                    "baseline": ["map": "colour z-distance + |height above plane − mean| / std, smoothed as the method's",
                                 "training_samples": samples, "pixels": baseline.pixels,
                                 "colour_mean": floats(baseline.colourMean), "colour_std": floats(baseline.colourStd),
                                 "height_mean_m": jsonNumber(baseline.heightMean), "height_std_m": jsonNumber(baseline.heightStd)]]
        }
    }
}

/// Pretty, key-sorted JSON with unescaped slashes (the keys are `<defect>/<id>` paths).
private func writeJSON(_ object: Any, to url: URL) throws {
    try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        .write(to: url, options: .atomic)
}

/// A Float as the JSON number with its shortest decimal spelling (1.25, not 1.2500000xxx).
func jsonNumber(_ value: Float) -> Any {
    value.isFinite ? Double("\(value)")! : NSNull()
}
