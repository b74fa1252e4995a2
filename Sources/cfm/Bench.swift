import ArgumentParser
import CFMData
import CFMDetector
import CFMModels
import CFMService
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
    @Option(help: "Synthetic sensor frame: a side (800) or WIDTHxHEIGHT (2448x2048); preprocessing resizes it to 224.")
    var sensorSize = SensorSize(width: 800, height: 800)
    @Option(help: "Benchmark this RGB image (PNG) instead of the synthetic frame (with --xyz).") var rgb: String?
    @Option(help: "Benchmark this point cloud (TIFF) instead of the synthetic frame (with --rgb).") var xyz: String?
    @OptionGroup var precision: PrecisionOption

    /// The sensor frame to time, afresh for every frame: the given files, read by the decode;
    /// or the synthetic frame encoded once as a wire message (protocol v1, rgb8, XYZ in metres),
    /// copied into a `ReceivedMessage` of its own per frame — the parts in buffers libzmq
    /// allocates, as `cfm serve` holds a message it received — and decoded as `cfm serve`
    /// decodes it: in the message's own bytes, which the frame borrows.
    private func sensorFrames() throws -> BenchReport.Receive {
        if let rgb, let xyz {
            return {
                { _ in
                    // Checked pixel-registered (a frame's colour and cloud have one size).
                    let files = try SensorFiles.readFrame(rgb: URL(fileURLWithPath: rgb), xyz: URL(fileURLWithPath: xyz), camera: nil)
                    return Frame(frameId: "bench", unit: .m, rgb: files.rgb, cloud: files.cloud)
                }
            }
        }
        let message = BenchFrame.message(width: sensorSize.width, height: sensorSize.height)
        return {
            let received = ReceivedMessage(copying: message)
            return { try FrameCodec.decode(received, buffers: $0) }
        }
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
                                             receive: try sensorFrames(), precision: precision.choice)
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

/// Median timings of the detector's stages and of preprocessing's sub-stages over `frames`
/// frames of one sensor frame.
struct BenchReport {
    /// Makes one sensor frame's input resident (a received message; nothing for files) and
    /// returns its decode (reads the files, or decodes the message, converting into the pool's
    /// buffers the layouts it cannot keep in place).
    typealias Receive = () throws -> Decode
    typealias Decode = (FrameBufferPool) throws -> Frame

    let tier: Tier
    let precision: Precision
    let frames: Int
    /// Stage → median milliseconds, in pipeline order.
    let stagesMs: [(name: String, ms: Double)]
    /// Preprocessing sub-stage → median milliseconds: `decode` (before `preprocess`, not part
    /// of it or of the frame time), then the sub-stages of `stagesMs`' `preprocess`.
    let preprocessStagesMs: [(name: String, ms: Double)]
    /// Resident memory (MiB) a frame adds at its peak, from the resident size before its decode:
    /// by the decode (its frame's buffers: none for the synthetic rgb8 + xyz_f32le message, whose
    /// parts the frame borrows), by preprocessing (over the size after the decode), and by both
    /// (`frame`). The received message — a fresh copy per frame, made before this is measured,
    /// as libzmq holds a message before `cfm serve` decodes it — is resident before, so it is
    /// not counted: this is what the daemon adds to a received message. (The message encoded
    /// once, which each frame's copy is made from, stays resident through the run: `peak_rss_mb`
    /// counts it and the copy.) For files, the decode reads them: their pixels count as the decode's.
    struct Growth {
        var decode = 0.0, preprocess = 0.0, frame = 0.0
        var json: [String: Double] { ["decode": decode, "preprocess": preprocess, "frame": frame] }
    }
    /// The warm-up frame's growth (fresh buffers and workspace: all of them count) and the last
    /// timed frame's (decoded into the buffers the frame before gave back, as `cfm serve` does).
    let firstGrowth: Growth, steadyGrowth: Growth
    /// Peak resident MiB of the whole run.
    let peakResidentMB: Double
    let sensorHeight: Int, sensorWidth: Int
    /// Stage → FLOPs per frame (analytic count), for stages dominated by arithmetic.
    let stageFlops: [String: Double]
    let medianMs: Double
    let foregroundPoints: Int, validPixels: Int

    /// `tier` nil: the bundle's (small for bare mapper files).
    static func measure(tier: Tier?, frames: Int, extractors: URL, model: URL, receive: Receive,
                        precision: PrecisionChoice = .bundle) throws -> BenchReport {
        let tier = tier ?? (ModelBundle.hasManifest(model) ? nil : .small)
        let detector = try AnomalyDetector.load(extractors: extractors, model: model, tier: tier, precision: precision)
        // Frames are received, decoded, preprocessed and their pixels let go (buffers recycled,
        // message parts freed) as `cfm serve` does it.
        let preprocessor = detector.weights.preprocessor, workspace = PreprocessWorkspace(), frameBuffers = FrameBufferPool()
        var samples: [[(name: String, ms: Double)]] = [], subSamples: [[(name: String, ms: Double)]] = [], totals: [Double] = []
        var last: (Detection, FrameFeatures)?, sensor = (height: 0, width: 0)
        var first = Growth(), steady = Growth(), peak = 0.0 // the run's peak, carried over the peak resets
        for frame in 0...frames {
            var times = StageTimes(), subTimes = StageTimes()
            let warmUp = frame == 0
            // The first and the last frame measure memory growth: the peak is reset before each step.
            let measured = warmUp || frame == frames
            var resident = (beforeDecode: 0.0, decodePeak: 0.0, afterDecode: 0.0)
            let decode = try receive()
            if measured { peak = max(peak, peakResidentMegabytes()); resident.beforeDecode = startPeakMeasurement() }
            var sensorFrame = try subTimes.measure("decode") { try decode(frameBuffers) }
            if measured { resident.decodePeak = peakResidentMegabytes(); resident.afterDecode = startPeakMeasurement() }
            sensor = (sensorFrame.height, sensorFrame.width)
            let start = nowMilliseconds()
            // As the serve pipeline's preprocessing stage runs it: the frame's cloud edited in place.
            let preprocessed = try DetectorProcessing.prepare(&sensorFrame, preprocessor: preprocessor, workspace: workspace,
                                                              times: &times, subStages: &subTimes)
            if measured {
                let preprocessPeak = peakResidentMegabytes()
                peak = max(peak, resident.decodePeak)
                let growth = Growth(decode: resident.decodePeak - resident.beforeDecode, preprocess: preprocessPeak - resident.afterDecode,
                                    frame: max(resident.decodePeak, preprocessPeak) - resident.beforeDecode)
                if warmUp { first = growth } else { steady = growth }
            }
            frameBuffers.recycle(&sensorFrame) // as the pipeline does once a frame is preprocessed: the message part is freed
            last = try detector.detect(preprocessed.input, times: &times)
            guard !warmUp else { continue }
            totals.append(nowMilliseconds() - start)
            samples.append(times.stages)
            subSamples.append(subTimes.stages)
        }
        let (detection, features) = last!
        func medians(_ samples: [[(name: String, ms: Double)]]) -> [(name: String, ms: Double)] {
            samples[0].map(\.name).enumerated().map { i, name in (name: name, ms: median(samples.map { $0[i].ms })) }
        }
        let grid = detector.vit.config.grid, groups = detector.pointMAE.config.groups
        return BenchReport(
            tier: detector.tier, precision: detector.weights.precision, frames: frames, stagesMs: medians(samples),
            preprocessStagesMs: medians(subSamples),
            firstGrowth: first, steadyGrowth: steady,
            peakResidentMB: max(peak, peakResidentMegabytes()), sensorHeight: sensor.height, sensorWidth: sensor.width,
            stageFlops: ["extract2d": detector.vit.flops, "extract3d": detector.pointMAE.flops,
                         "map": detector.scorer!.flops(pixels: detection.validPixels, tokens: grid * grid, groups: groups)],
            medianMs: median(totals), foregroundPoints: features.foreground.count, validPixels: detection.validPixels)
    }

    /// Achieved GFLOP/s per stage.
    var gflopsPerSecond: [String: Double] {
        let ms = Dictionary(uniqueKeysWithValues: stagesMs.map { ($0.name, $0.ms) })
        return Dictionary(uniqueKeysWithValues: stageFlops.map { ($0.key, $0.value / 1e6 / ms[$0.key]!) })
    }

    /// The JSON object scripts read (`tier frames median_ms fps peak_rss_mb stages_ms gflops_per_s`,
    /// and for preprocessing `sensor`, `preprocess_stages_ms`, `preprocess_ns_per_pixel`,
    /// `rss_growth_mb` and `rss_growth_steady_mb` {decode, preprocess, frame} of the first and the
    /// last frame, and `rss_growth_bytes_per_pixel` {first, steady}: their `frame` per sensor pixel).
    func json() throws -> String {
        let pixels = Double(sensorHeight * sensorWidth)
        let preprocessMs = stagesMs.first { $0.name == "preprocess" }?.ms ?? 0
        let object: [String: Any] = [
            "tier": tier.rawValue, "precision": precision.rawValue, "frames": frames, "threads": cpuCount,
            "median_ms": medianMs, "fps": 1000 / medianMs,
            "peak_rss_mb": peakResidentMB,
            "sensor": ["height": sensorHeight, "width": sensorWidth],
            "preprocess_stages_ms": Dictionary(uniqueKeysWithValues: preprocessStagesMs.map { ($0.name, $0.ms) }),
            "preprocess_ns_per_pixel": preprocessMs * 1e6 / pixels,
            "rss_growth_mb": firstGrowth.json, "rss_growth_steady_mb": steadyGrowth.json,
            "rss_growth_bytes_per_pixel": ["first": firstGrowth.frame * 1_048_576 / pixels, "steady": steadyGrowth.frame * 1_048_576 / pixels],
            "stages_ms": Dictionary(uniqueKeysWithValues: stagesMs.map { ($0.name, $0.ms) }),
            "gflop": stageFlops.mapValues { $0 / 1e9 },
            "gflops_per_s": gflopsPerSecond,
            "foreground_points": foregroundPoints, "valid_pixels": validPixels,
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
        return String(decoding: data, as: UTF8.self)
    }
}
