import CFMData
import CFMDetector
import CFMModels
import CFMTensor
import Foundation

/// Why the daemon cannot score frames with a config (startup or reload refuses it).
public struct ServiceSetupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The real processing function: preprocess → detect → verdict against the threshold.
public enum DetectorProcessing {
    /// The decision threshold: the config override, else the bundle's calibration.
    public static func threshold(config: ServiceConfig, manifest: ModelManifest?) throws -> Float {
        if let t = config.decision.threshold { return Float(t) }
        if let t = manifest?.calibration?.threshold { return t }
        throw ServiceSetupError(manifest == nil
            ? "no threshold: \(config.model.bundle) has no manifest.yaml and decision.threshold is not set"
            : "no threshold: \(config.model.bundle) is not calibrated (run cfm calibrate) and decision.threshold is not set")
    }

    /// A short model id for results: bundle name, class and mapper checksum prefix.
    public static func modelId(config: ServiceConfig, manifest: ModelManifest?) -> String {
        let name = URL(fileURLWithPath: config.model.bundle).lastPathComponent
        guard let manifest else { return name }
        let sum = manifest.mappers.first.map { "@" + String($0.checksum.suffix(12)) } ?? ""
        return "\(name)/\(manifest.className)\(sum)"
    }

    /// The preprocessing to serve with: the bundle's, refused when the config's `preprocessing:`
    /// section asserts another value; bare mapper files (no manifest) take the section over the defaults.
    public static func preprocessing(config: ServiceConfig, manifest: ModelManifest?) throws -> PreprocessOptions {
        guard let manifest else { return config.preprocessing.applied(to: PreprocessOptions()) }
        if let reason = config.preprocessing.disagreement(with: manifest.preprocessOptions) {
            throw ServiceSetupError("\(config.model.bundle): \(reason)")
        }
        return manifest.preprocessOptions
    }

    /// Checks the model a config names without loading the weights (`cfm serve --check-config`):
    /// the files exist; a bundle's checksums match and its tier, BatchNorm mode and preprocessing
    /// agree with the config (bare mapper files need model.tier); there is a threshold.
    public static func check(_ config: ServiceConfig) throws -> (tier: Tier, threshold: Float) {
        let bundle = URL(fileURLWithPath: config.model.bundle), extractors = URL(fileURLWithPath: config.model.extractors)
        let files = [ExtractorFile.vit, ExtractorFile.pointMAE].map { (extractors.appendingPathComponent($0), "model.extractors") }
            + [BundleFile.rgbToXYZ, BundleFile.xyzToRGB].map { (bundle.appendingPathComponent($0), "model.bundle") }
        for (file, key) in files where !FileManager.default.fileExists(atPath: file.path) {
            throw ServiceSetupError("\(file.path): no such file (\(key))")
        }
        let manifest = try ModelBundle.hasManifest(bundle) ? ModelBundle.manifest(at: bundle, extractors: extractors) : nil
        try manifest?.require(tier: config.model.tier, batchnorm: config.model.batchnorm, precision: config.model.precision, bundle: bundle)
        try CPUFeatures.current.require(config.model.precision ?? manifest?.scoringPrecision ?? .fp32)
        guard let tier = manifest?.tier ?? config.model.tier else { throw DetectorSetupError.noTier(model: bundle.path) }
        _ = try preprocessing(config: config, manifest: manifest)
        return (tier, try threshold(config: config, manifest: manifest))
    }

    /// The serving stages: one preprocessing function (its own thread, so a frame is
    /// preprocessed while the previous one is in inference) and one inference function per
    /// worker. The weights (extractors pruned to the bundle's tier, mappers, manifest) are
    /// loaded and checksummed once and shared by every worker; each worker owns only its
    /// detector's workspaces (a detector serves one caller at a time). Refuses a tier,
    /// BatchNorm mode or preprocessing that differs from the bundle's, and a config without
    /// threshold.
    public static func makeProcessors(_ config: ServiceConfig) throws -> FrameStages {
        let weights = try DetectorWeights.load(extractors: URL(fileURLWithPath: config.model.extractors),
                                               model: URL(fileURLWithPath: config.model.bundle),
                                               tier: config.model.tier, batchNorm: config.model.batchnorm,
                                               precision: config.model.precision.map { .required($0) } ?? .bundle)
        let threshold = try threshold(config: config, manifest: weights.manifest)
        let preprocessor = Preprocessor(options: try preprocessing(config: config, manifest: weights.manifest))
        let model = modelId(config: config, manifest: weights.manifest)
        return FrameStages(
            prepare: [preparation(preprocessor)],
            infer: (0..<config.pipeline.inFlight).map { _ in
                inference(detector: DetectorBox(AnomalyDetector(weights: weights)), threshold: threshold, model: model,
                          publishMaps: config.output.publishMaps)
            },
            editsFrames: true)
    }

    /// What the preprocessing stage hands to a worker.
    struct Prepared: Sendable {
        var preprocessed: PreprocessedFrame
        /// `preprocess` so far; the worker adds the detector's stages.
        var times: StageTimes
    }

    /// The preprocessing stage: sensor frame → model input (units, background removal, padding,
    /// resizing). Background removal edits the frame's own cloud — the received message's
    /// bytes, or a pooled buffer (the pipeline hands the frame over and recycles or frees its
    /// pixels afterwards: `infer` reads only the frame's id and size) — so nothing at the
    /// sensor's resolution is copied or allocated; the stage's workspace keeps the resize
    /// scratch from frame to frame.
    static func preparation(_ preprocessor: Preprocessor) -> @Sendable (inout Frame) throws -> Prepared {
        let workspace = PreprocessWorkspace()
        return { frame in
            var times = StageTimes(), subStages = StageTimes()
            let preprocessed = try prepare(&frame, preprocessor: preprocessor, workspace: workspace, times: &times,
                                           subStages: &subStages)
            return Prepared(preprocessed: preprocessed, times: times)
        }
    }

    /// Preprocesses `frame` as the serve pipeline does (`cfm bench` times the same call),
    /// editing its cloud in place: `preprocess` into `times`, its sub-stages into `subStages`.
    public static func prepare(_ frame: inout Frame, preprocessor: Preprocessor, workspace: PreprocessWorkspace,
                               times: inout StageTimes, subStages: inout StageTimes) throws -> PreprocessedFrame {
        let unit = frame.unit
        return try times.measure("preprocess") {
            try frame.withPixels { rgb, cloud in
                try preprocessor(rgb: rgb, editing: cloud, unit: unit, workspace: workspace, times: &subStages)
            }
        }
    }

    /// The inference stage: detect → verdict against the threshold, defect regions in sensor pixels.
    static func inference(detector box: DetectorBox, threshold: Float, model: String,
                          publishMaps: Bool) -> @Sendable (Frame, Prepared) throws -> Inference {
        { frame, prepared in
            try box.withDetector { detector in
                var times = prepared.times
                let (detection, _) = try detector.detect(prepared.preprocessed.input, times: &times)
                let regions = Self.regions(map: detection.anomalyMap, score: detection.score, threshold: threshold, frame: frame)
                return Inference(score: detection.score, threshold: threshold, tier: detector.tier.rawValue, model: model,
                                 stagesMs: times.stages, foregroundPoints: prepared.preprocessed.foregroundPoints,
                                 map: publishMaps ? detection.anomalyMap.scalars : nil, regions: regions)
            }
        }
    }
}

extension DetectorProcessing {
    /// Where a scored frame's defects are: the regions of `map` [S, S] (the detector's input grid
    /// over the padded frame) above `threshold`, back-mapped to the frame's sensor pixels.
    static func regions(map: Tensor, score: Float, threshold: Float, frame: Frame) -> DefectRegions {
        let grid = SensorMapGrid(sensorHeight: frame.height, sensorWidth: frame.width, mapSize: map.shape[0])
        return DefectRegions(map: map, score: score, threshold: threshold, grid: grid)
    }
}

/// A detector used by one worker thread at a time (the lock makes that a checked fact).
final class DetectorBox: @unchecked Sendable {
    private let detector: AnomalyDetector
    private let lock = NSLock()

    init(_ detector: AnomalyDetector) { self.detector = detector }

    func withDetector<T>(_ body: (AnomalyDetector) throws -> T) rethrows -> T {
        lock.lock(); defer { lock.unlock() }
        return try body(detector)
    }
}
