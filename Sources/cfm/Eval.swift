import ArgumentParser
import CFMData
import CFMDetector
import CFMModels
import CFMTensor
import Dispatch
import Foundation

/// `cfm eval`: a model bundle on the labelled test split — the MVTec 3D-AD metrics, and every
/// map, score and overlay for a person to look at.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a model bundle on DATASET/CLASS/test: I-AUROC, P-AUROC, AUPRO, maps, scores, overlays.",
        discussion: """
            Writes OUT/metrics.json (overall and per defect type, each defect's images together with \
            the good ones), OUT/scores.json ({"<defect>/<id>": score}), OUT/maps/<defect>/<id>.tiff \
            (float32 224×224 anomaly map) and OUT/overlays/<defect>/<id>.png (heat map over the \
            model's RGB input, ground-truth contour in white; the colour scale tops out at the \
            calibrated threshold, or at the map's maximum in an uncalibrated bundle).

            Ground-truth masks are brought onto the 224×224 map grid the way the point cloud is: \
            centred zero padding to a square, then PyTorch-nearest resizing. P-AUROC ranks each \
            map divided by √(its mean), AUPRO thresholds each map divided by the mean of its non-zero \
            values (docs/evaluation.md). AUPRO uses the exact curve (every distinct score) unless \
            --pro-thresholds N asks for the CFM authors' N sampled thresholds (99 in their tables).
            """)

    @Option(help: "Class directory in MVTec 3D-AD layout (DATASET/CLASS).") var data: String
    @Option(help: "Directory with the extractor weights the bundle was trained with.") var extractors: String?
    @Option(help: "Model bundle directory (cfm train); its manifest gives the tier and BatchNorm mode.") var model: String?
    @Flag(help: "Score with the non-learned baseline (colour and height-above-plane distances from the nominal training parts) instead of a model bundle.")
    var baseline = false
    @Option(help: "With --baseline: fit it to the first K training samples (default: all).") var shots: Int?
    @Option(help: "Output directory.") var out: String
    @Option(help: "AUPRO thresholds: 0 = exact curve (default); N ≥ 2 = the CFM authors' sampling (99 as in the paper).")
    var proThresholds = 0
    @OptionGroup var preprocess: PreprocessFlags

    func validate() throws {
        guard proThresholds == 0 || proThresholds >= 2 else { throw ValidationError("--pro-thresholds must be 0 (exact) or at least 2") }
        if baseline {
            guard extractors == nil, model == nil else { throw ValidationError("--baseline takes no --extractors or --model") }
            guard shots.map({ $0 >= 1 }) ?? true else { throw ValidationError("--shots must be at least 1") }
            guard !preprocess.noBackgroundRemoval else { throw ValidationError("--baseline needs background removal (its support plane)") }
        } else {
            guard extractors != nil, model != nil else { throw ValidationError("give --extractors and --model (or --baseline)") }
            guard shots == nil else { throw ValidationError("--shots applies to --baseline; a model bundle was trained on its own shots") }
        }
    }

    func run() throws {
        let started = Date()
        let samples = try datasetSamples(data, .test)
        let className = URL(fileURLWithPath: data).standardizedFileURL.lastPathComponent
        let preprocessor = preprocess.preprocessor, size = preprocessor.options.size
        let scorer = try baseline ? fitBaseline(preprocessor) : loadModel(className: className)
        let outDir = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)
        let threshold = scorer.threshold

        let progress = Progress("eval", total: samples.count)
        var images: [EvaluatedImage] = [], scores: [String: Any] = [:], frameMs: [Double] = []
        for (i, sample) in samples.enumerated() {
            var times = StageTimes()
            let frame: PreprocessedFrame, loaded: LoadedSample, detection: Detection
            do {
                (frame, loaded) = try times.measure("preprocess") { try preprocessor(sample, unit: preprocess.unit) }
                detection = try scorer.detect(frame, times: &times)
            } catch {
                throw CommandFailure("test/\(sample.key): \(error)")
            }
            frameMs.append(times.total)
            let mask = loaded.mask.resizedMask(to: size)
            images.append(EvaluatedImage(defect: sample.defect, id: sample.id, score: detection.score,
                                         pixelMap: AnomalyScoring.pixelMap(detection.anomalyMap),
                                         regionMap: AnomalyScoring.regionMap(detection.anomalyMap),
                                         truth: GroundTruthRegions(mask: mask)))
            scores[sample.key] = jsonNumber(detection.score)

            for folder in ["maps", "overlays"] {
                try FileManager.default.createDirectory(at: outDir.appendingPathComponent(folder).appendingPathComponent(sample.defect),
                                                        withIntermediateDirectories: true)
            }
            try TIFFFile.write(detection.anomalyMap.reshaped([size, size, 1]),
                               to: outDir.appendingPathComponent("maps/\(sample.key).tiff"))
            let peak = detection.anomalyMap.maxAbs
            let scale = threshold.map { $0 * peak / max(detection.score, .leastNormalMagnitude) } ?? peak
            try PNGFile.write(Overlay.render(frame.rgb, map: detection.anomalyMap, scale: scale, contour: mask),
                              to: outDir.appendingPathComponent("overlays/\(sample.key).png"))
            progress.update(i + 1, String(format: "%@ score %.4f %.0f ms", sample.key, detection.score, times.total))
        }

        let metricsStart = DispatchTime.now().uptimeNanoseconds
        let report = EvaluationReport(images, sampling: proThresholds == 0 ? .exact : .thresholds(proThresholds))
        let metricsSeconds = Double(DispatchTime.now().uptimeNanoseconds - metricsStart) / 1e9

        if report.overall.imageAUROC == nil || report.overall.regions == 0 {
            let missing = report.overall.nominal == 0 ? "no good samples" : report.overall.anomalous == 0 ? "no defective samples" : "no ground-truth regions"
            FileHandle.standardError.write(Data("warning: the test split has \(missing); undefined metrics are null\n".utf8))
        }
        let sorted = frameMs.sorted()
        let totalMs = frameMs.reduce(0, +)
        var metrics = report.overall.jsonObject
        metrics["class"] = className
        metrics.merge(scorer.description) { $1 }
        metrics["data"] = URL(fileURLWithPath: data).standardizedFileURL.path
        metrics["threshold"] = threshold.map { jsonNumber($0) } ?? NSNull()
        metrics["pro_curve"] = proThresholds == 0 ? "exact" : "\(proThresholds) thresholds (CFM authors' sampling)"
        metrics["by_defect"] = report.byDefect.mapValues(\.jsonObject)
        metrics["samples_by_defect"] = Dictionary(grouping: samples, by: \.defect).mapValues(\.count)
        metrics["background_removal"] = !preprocess.noBackgroundRemoval
        metrics["gt_resize"] = "centred zero padding to a square, then PyTorch-nearest to \(size)×\(size) (as the point cloud)"
        metrics["map_normalisation"] = ["p_auroc": "map / sqrt(mean(map))", "aupro": "map / mean(non-zero map)"]
        metrics["timing"] = [
            "fps": totalMs > 0 ? 1000 * Double(frameMs.count) / totalMs : 0,
            "median_ms": sorted[sorted.count / 2], "mean_ms": totalMs / Double(frameMs.count),
            "metrics_s": metricsSeconds, "wall_s": Date().timeIntervalSince(started),
        ]
        try writeEvalJSON(metrics, to: outDir.appendingPathComponent("metrics.json"))
        try writeEvalJSON(scores, to: outDir.appendingPathComponent("scores.json"))

        func show(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "n/a" }
        let o = report.overall
        print("\(className) \(scorer.name): I-AUROC \(show(o.imageAUROC)) P-AUROC \(show(o.pixelAUROC)) "
              + zip(PROCurve.limits, o.auPRO).map { "AUPRO@\(DetectionMetrics.percent($0)) \(show($1))" }.joined(separator: " ")
              + String(format: " — %d samples (%d good), %.2f frames/s → %@", o.samples, o.nominal,
                       totalMs > 0 ? 1000 * Double(frameMs.count) / totalMs : 0, outDir.path))
    }
}

extension Eval {
    /// The crossmodal detector of `--model`, with the tier and BatchNorm mode its manifest names.
    private func loadModel(className: String) throws -> EvalScorer {
        guard let model, let extractors else { throw CommandFailure("give --extractors and --model (or --baseline)") }
        let bundle = URL(fileURLWithPath: model)
        guard FileManager.default.fileExists(atPath: bundle.appendingPathComponent(BundleFile.manifest).path) else {
            throw CommandFailure("\(model): no \(BundleFile.manifest) — not a model bundle written by cfm train")
        }
        let settings = try bundleSettings(bundle)
        let detector = try AnomalyDetector.load(extractors: URL(fileURLWithPath: extractors), model: bundle,
                                                tier: settings.tier, batchNorm: settings.batchnorm)
        if let trained = detector.manifest?.className, trained != className {
            FileHandle.standardError.write(Data("warning: the bundle was trained on class '\(trained)', evaluating on '\(className)'\n".utf8))
        }
        return .crossmodal(detector, bundle: bundle, batchnorm: settings.batchnorm)
    }

    /// The baseline's statistics over the first `--shots` nominal training samples.
    private func fitBaseline(_ preprocessor: Preprocessor) throws -> EvalScorer {
        let samples = try trainingSamples(data, shots: shots)
        let progress = Progress("baseline", total: samples.count)
        let frames = try samples.enumerated().map { i, sample in
            defer { progress.update(i + 1, sample.key) }
            do { return try preprocessor(sample, unit: preprocess.unit).0 } catch { throw CommandFailure("train/\(sample.key): \(error)") }
        }
        return .baseline(try NominalBaseline.fit(frames), samples: samples.count)
    }
}

/// What scores the test frames: a trained model bundle, or the non-learned baseline.
private enum EvalScorer {
    case crossmodal(AnomalyDetector, bundle: URL, batchnorm: BatchNormMode)
    case baseline(NominalBaseline, samples: Int)

    func detect(_ frame: PreprocessedFrame, times: inout StageTimes) throws -> Detection {
        switch self {
        case let .crossmodal(detector, _, _): try detector.detect(frame.input, times: &times).0
        case let .baseline(baseline, _): try times.measure("baseline") { try baseline.detect(frame) }
        }
    }

    /// The calibrated threshold, if any (the baseline has none).
    var threshold: Float? {
        if case let .crossmodal(detector, _, _) = self { detector.manifest?.calibration?.threshold } else { nil }
    }

    /// For the progress and summary lines: the tier, or "baseline".
    var name: String {
        switch self {
        case let .crossmodal(detector, _, _): detector.tier.rawValue
        case .baseline: "baseline"
        }
    }

    /// metrics.json entries saying what scored.
    var description: [String: Any] {
        switch self {
        case let .crossmodal(detector, bundle, batchnorm):
            return ["scorer": "crossmodal", "tier": detector.tier.rawValue, "batchnorm": batchnorm.rawValue,
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
private func writeEvalJSON(_ object: Any, to url: URL) throws {
    try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        .write(to: url, options: .atomic)
}

/// A Float as the JSON number with its shortest decimal spelling (1.25, not 1.2500000xxx).
func jsonNumber(_ value: Float) -> Any {
    value.isFinite ? Double("\(value)")! : NSNull()
}
