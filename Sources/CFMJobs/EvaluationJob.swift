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
/// contour in green) and report.html with roc.png and pro.png (`EvaluationPage`). With
/// `Options.aggregations`, metrics.json also has `variants`: the metrics of each compared way of
/// combining ψ2D and ψ3D, all formed from the same two maps of each frame.
public enum EvaluationJob {
    /// What scores the test frames.
    public enum Scorer: Sendable {
        /// A model bundle with the extractor weights it was trained with; its manifest sets the
        /// tier, BatchNorm mode, preprocessing and scoring.
        case model(bundle: URL, extractors: URL)
        /// Colour and height-above-plane distances from `shots` (nil: all) nominal training
        /// parts, drawn with `seed` as `cfm train --shots` draws them (`SampleDraw`, `.random`:
        /// the same parts as a bundle trained with that seed), with the default preprocessing.
        case baseline(shots: Int?, seed: UInt64 = 0)
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
        /// Aggregations to compare with the bundle's own in the same pass (`metrics.json`'s
        /// `variants`): ψ2D and ψ3D are computed once per frame and each variant combines,
        /// smooths and scores them. Empty = the bundle's aggregation only. Model bundles only.
        public var aggregations: [ScoringDefinition.Aggregation] = []
        /// Precision of a model's GEMM-heavy layers (the bundle's by default).
        public var precision: PrecisionChoice = .bundle

        public init(data: URL, scorer: Scorer, out: URL) { (self.data, self.scorer, self.out) = (data, scorer, out) }

        public func validate() throws {
            guard proThresholds == 0 || proThresholds >= 2 else { throw JobError("--pro-thresholds must be 0 (exact) or at least 2") }
            if case let .baseline(shots, _) = scorer {
                if let shots, shots < 1 { throw JobError("--shots must be at least 1") }
                guard aggregations.isEmpty else {
                    throw JobError("--aggregations applies to a model bundle (the baseline has its own fixed map)")
                }
            }
        }
    }

    /// The aggregations `list` names: `all`, or names separated by commas
    /// (`product,sum,max,2d_only,3d_only`).
    public static func aggregations(named list: String) throws -> [ScoringDefinition.Aggregation] {
        if list == "all" { return ScoringDefinition.Aggregation.allCases }
        let names = ScoringDefinition.Aggregation.allCases.map(\.rawValue).joined(separator: ", ")
        let parsed = try list.split(separator: ",", omittingEmptySubsequences: false).map { name in
            let trimmed = name.trimmingCharacters(in: .whitespaces)
            guard let aggregation = ScoringDefinition.Aggregation(rawValue: trimmed) else {
                throw JobError("--aggregations: unknown aggregation '\(trimmed)' (all, or a comma list of \(names))")
            }
            return aggregation
        }
        return parsed.reduce(into: []) { if !$0.contains($1) { $0.append($1) } }
    }

    /// What an evaluation found (metrics.json holds the same and more).
    public struct Result: Sendable {
        public var className: String
        /// The tier of the bundle, or "baseline".
        public var scorerName: String
        /// The class the bundle was trained on, when it differs from the evaluated one.
        public var trainedClass: String?
        public var report: EvaluationReport
        /// The bundle's aggregation (nil for the baseline); `report` is computed with it.
        public var aggregation: ScoringDefinition.Aggregation?
        /// With `Options.aggregations`: every compared aggregation's report, the bundle's own
        /// (equal to `report`) included.
        public var variants: [ScoringDefinition.Aggregation: EvaluationReport]
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
        // The compared aggregations other than the bundle's own (whose images are `images`).
        let ownScoring = scorer.scoring
        let otherVariants = options.aggregations.filter { $0 != ownScoring?.aggregation }
        var variantImages = [ScoringDefinition.Aggregation: [EvaluatedImage]]()
        var variantSeconds = 0.0
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
            let truth = GroundTruthRegions(mask: loaded.mask.evaluationMask(size: size))
            images.append(EvaluatedImage(sample, map: detection.anomalyMap, score: detection.score, truth: truth))
            if let ownScoring, !otherVariants.isEmpty {
                let variantsStart = DispatchTime.now().uptimeNanoseconds
                for aggregation in otherVariants {
                    var scoring = ownScoring
                    scoring.aggregation = aggregation
                    let (map, score) = scoring.apply(psi2d: detection.psi2d, psi3d: detection.psi3d, size: size)
                    variantImages[aggregation, default: []].append(EvaluatedImage(sample, map: map, score: score, truth: truth))
                }
                variantSeconds += Double(DispatchTime.now().uptimeNanoseconds - variantsStart) / 1e9
            }
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
        var variants = variantImages.mapValues { EvaluationReport($0, sampling: sampling) }
        if let own = ownScoring?.aggregation, !options.aggregations.isEmpty { variants[own] = report }
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
                            report: report, aggregation: ownScoring?.aggregation, variants: variants, scores: scores,
                            frameMs: frameMs, out: outDir)

        let sorted = frameMs.sorted(), totalMs = frameMs.reduce(0, +)
        var metrics = report.overall.jsonObject
        metrics["class"] = name
        metrics.merge(scorer.description) { $1 }
        metrics["data"] = options.data.standardizedFileURL.path
        metrics["threshold"] = scorer.threshold.map { jsonNumber($0) } ?? NSNull()
        if let rates = page.rates { metrics["at_threshold"] = rates.jsonObject }
        metrics["pro_curve"] = options.proThresholds == 0 ? "exact" : "\(options.proThresholds) thresholds (CFM authors' sampling)"
        metrics["by_defect"] = report.byDefect.mapValues(\.jsonObject)
        metrics["aggregation"] = ownScoring.map { $0.aggregation.rawValue } ?? NSNull()
        if !variants.isEmpty {
            metrics["variants"] = Dictionary(uniqueKeysWithValues: variants.map { aggregation, variant in
                var entry = variant.overall.jsonObject
                entry["by_defect"] = variant.byDefect.mapValues(\.jsonObject)
                return (aggregation.rawValue, entry)
            })
        }
        metrics["samples_by_defect"] = Dictionary(grouping: samples, by: \.defect).mapValues(\.count)
        metrics["background_removal"] = preprocessor.options.removeBackground
        metrics["gt_resize"] = GroundTruthResampling.official.summary(size: size)
        metrics["map_normalisation"] = ["p_auroc": "map / sqrt(mean(map))", "aupro": "map / mean(non-zero map)"]
        metrics["timing"] = [
            "fps": result.framesPerSecond,
            "median_ms": sorted[sorted.count / 2], "mean_ms": totalMs / Double(frameMs.count),
            "metrics_s": metricsSeconds, "wall_s": Date().timeIntervalSince(started), "variants_s": variantSeconds,
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
        case let .baseline(shots, seed):
            let samples = try selectTrainingSamples(options.data, shots: shots, seed: seed).0
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

    /// How the bundle combines ψ2D and ψ3D and scores (nil for the baseline, whose map is fixed).
    var scoring: ScoringDefinition? {
        if case let .crossmodal(detector, _) = self { detector.weights.scoring } else { nil }
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

extension EvaluatedImage {
    /// A test sample judged by its smoothed anomaly `map` and image `score`, with the map
    /// normalisations of the pixel metrics (docs/evaluation.md).
    init(_ sample: DatasetSample, map: Tensor, score: Float, truth: GroundTruthRegions) {
        self.init(defect: sample.defect, id: sample.id, score: score, pixelMap: AnomalyScoring.pixelMap(map),
                  regionMap: AnomalyScoring.regionMap(map), truth: truth)
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
