import ArgumentParser
import CFMData
import CFMDetector
import CFMModels
import CFMTensor
import Foundation

/// `cfm bench`: per-stage timings of the pipeline on a synthetic frame with seeded random
/// weights of the real size; one JSON object on stdout.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmark a tier: per-stage median ms, frames/s, peak RSS, achieved GFLOP/s (JSON on stdout).")

    @Option(help: "Pruning tier: tiny, small, medium or full (default: the --model bundle's, else small).") var tier: Tier?
    @Option(help: "Timed frames (after one warm-up frame).") var frames: Int = 10
    @Option(help: "Directory with extractor weights; default: seeded random weights in a temporary directory.")
    var extractors: String?
    @Option(help: "Model bundle with the mappers; default: random mappers for the tier.") var model: String?
    @Option(help: "Side of the synthetic sensor frame (preprocessing resizes it to 224).") var sensorSize = 800
    @Option(help: "Benchmark this RGB image (PNG) instead of the synthetic frame (with --xyz).") var rgb: String?
    @Option(help: "Benchmark this point cloud (TIFF) instead of the synthetic frame (with --rgb).") var xyz: String?
    @OptionGroup var precision: PrecisionOption

    /// The sensor frame to time: the given files, or the synthetic one.
    private func sensorFrame() throws -> (rgb: RGBImage, cloud: Tensor) {
        guard let rgb, let xyz else { return BenchFrame.make(size: sensorSize) }
        return (try PNGFile.readRGB(URL(fileURLWithPath: rgb)), try TIFFFile.readPointCloud(URL(fileURLWithPath: xyz)))
    }

    func validate() throws {
        guard frames >= 1 else { throw ValidationError("--frames must be at least 1") }
        guard (rgb == nil) == (xyz == nil) else { throw ValidationError("--rgb and --xyz go together") }
    }

    func run() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("cfm-bench-\(getpid())")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let extractorDir = try extractors.map { URL(fileURLWithPath: $0) } ?? {
            try InitWeights.write(seed: 0, to: scratch)
            return scratch
        }()
        let modelDir = try model.map { URL(fileURLWithPath: $0) } ?? {
            try RandomMappers.write(tier: tier ?? .small, seed: 0, to: scratch)
            return scratch
        }()
        let report = try BenchReport.measure(tier: tier, frames: frames, extractors: extractorDir, model: modelDir,
                                             sensor: try sensorFrame(), precision: precision.choice)
        print(try report.json())
    }
}

/// Seeded mappers with PyTorch's default initialisation, as training starts them.
enum RandomMappers {
    static func write(tier: Tier, seed: UInt64, to dir: URL) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let rgb = VisionTransformer.Config.dinoViTB8.dim, xyz = tier.pointFeatureBlocks.count * PointMAE.Config.pointMAE.dim
        for (name, (i, o), s) in [(BundleFile.rgbToXYZ, (rgb, xyz), seed), (BundleFile.xyzToRGB, (xyz, rgb), seed &+ 1)] {
            try SafeTensors.write(FeatureMapper.initial(inFeatures: i, outFeatures: o, seed: s).tensors,
                                  to: dir.appendingPathComponent(name))
        }
    }
}

/// Median timings of the detector's stages over `frames` frames of a synthetic input.
struct BenchReport {
    let tier: Tier
    let precision: Precision
    let frames: Int
    /// Stage → median milliseconds, in pipeline order.
    let stagesMs: [(name: String, ms: Double)]
    /// Stage → FLOPs per frame (analytic count), for stages dominated by arithmetic.
    let stageFlops: [String: Double]
    let medianMs: Double
    let foregroundPoints: Int, validPixels: Int

    /// `tier` nil: the bundle's (small for bare mapper files).
    static func measure(tier: Tier?, frames: Int, extractors: URL, model: URL,
                        sensor: (rgb: RGBImage, cloud: Tensor), precision: PrecisionChoice = .bundle) throws -> BenchReport {
        let tier = tier ?? (ModelBundle.hasManifest(model) ? nil : .small)
        let detector = try AnomalyDetector.load(extractors: extractors, model: model, tier: tier, precision: precision)
        let preprocessor = detector.weights.preprocessor
        var samples: [[(name: String, ms: Double)]] = [], totals: [Double] = []
        var last: (Detection, FrameFeatures)?
        for frame in 0...frames {
            var times = StageTimes()
            let start = nowMilliseconds()
            let preprocessed = try times.measure("preprocess") { try preprocessor(rgb: sensor.rgb, cloud: sensor.cloud) }
            last = try detector.detect(preprocessed.input, times: &times)
            guard frame > 0 else { continue }  // warm-up
            totals.append(nowMilliseconds() - start)
            samples.append(times.stages)
        }
        let (detection, features) = last!
        let names = samples[0].map(\.name)
        let stages = names.enumerated().map { i, name in (name: name, ms: median(samples.map { $0[i].ms })) }
        let grid = detector.vit.config.grid, groups = detector.pointMAE.config.groups
        return BenchReport(
            tier: detector.tier, precision: detector.weights.precision, frames: frames, stagesMs: stages,
            stageFlops: ["extract2d": detector.vit.flops, "extract3d": detector.pointMAE.flops,
                         "map": detector.scorer!.flops(pixels: detection.validPixels, tokens: grid * grid, groups: groups)],
            medianMs: median(totals), foregroundPoints: features.foreground.count, validPixels: detection.validPixels)
    }

    /// Achieved GFLOP/s per stage.
    var gflopsPerSecond: [String: Double] {
        let ms = Dictionary(uniqueKeysWithValues: stagesMs.map { ($0.name, $0.ms) })
        return Dictionary(uniqueKeysWithValues: stageFlops.map { ($0.key, $0.value / 1e6 / ms[$0.key]!) })
    }

    /// The JSON object scripts read (`tier frames median_ms fps peak_rss_mb stages_ms gflops_per_s`).
    func json() throws -> String {
        let object: [String: Any] = [
            "tier": tier.rawValue, "precision": precision.rawValue, "frames": frames, "threads": cpuCount,
            "median_ms": medianMs, "fps": 1000 / medianMs,
            "peak_rss_mb": peakResidentMegabytes(),
            "stages_ms": Dictionary(uniqueKeysWithValues: stagesMs.map { ($0.name, $0.ms) }),
            "gflop": stageFlops.mapValues { $0 / 1e9 },
            "gflops_per_s": gflopsPerSecond,
            "foreground_points": foregroundPoints, "valid_pixels": validPixels,
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
        return String(decoding: data, as: UTF8.self)
    }
}
