import CFMData
import CFMDetector
import CFMModels
import CFMTensor
import Foundation

/// Why a bench could not start: a one-line reason naming what was wrong.
public struct BenchError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The pipeline benchmark as a library job: per-stage median timings of one sensor frame,
/// received, decoded and preprocessed as `cfm serve` does it, then detected, over `frames`
/// frames after one warm-up frame; and the resident memory the first and the last frame add.
/// `cfm bench` parses, calls `run` and prints the report's JSON.
public enum BenchJob {
    /// The sensor frame every bench frame times.
    public enum FrameSource: Sendable, Equatable {
        /// The synthetic scene (`BenchScene`) of `width` × `height` pixels, sent as a protocol-v1
        /// wire message (rgb8, XYZ float32 in metres) and decoded in the message's own bytes.
        case synthetic(width: Int, height: Int)
        /// An RGB image (PNG) and its pixel-registered point cloud (TIFF), read by every frame's decode.
        case files(rgb: URL, xyz: URL)
    }

    public struct Options: Sendable {
        /// Pruning tier; nil = the `model` bundle's (small for bare mapper files and for random mappers).
        public var tier: Tier?
        /// Timed frames, after one warm-up frame; at least 1.
        public var frames = 10
        /// Directory with the extractor weights; nil = seeded random weights (seed 0) in a temporary directory.
        public var extractors: URL?
        /// Model bundle with the mappers; nil = seeded random mappers (seed 0) of the tier.
        public var model: URL?
        public var source: FrameSource = .synthetic(width: 800, height: 800)
        public var precision: PrecisionChoice = .bundle

        public init() {}
    }

    /// Runs the bench: the default weights are written to a temporary directory removed at the end.
    public static func run(_ options: Options) throws -> BenchReport {
        guard options.frames >= 1 else { throw BenchError("frames must be at least 1, not \(options.frames)") }
        if case let .synthetic(width, height) = options.source, width < 1 || height < 1 {
            throw BenchError("synthetic sensor frame \(width)×\(height): both sides must be at least 1 pixel")
        }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("cfm-bench-\(getpid())-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let extractors = try options.extractors ?? {
            try SeededWeightFiles.writeExtractors(seed: 0, to: scratch)
            return scratch
        }()
        let model = try options.model ?? {
            try SeededWeightFiles.writeMappers(seed: 0, for: options.tier ?? .small, to: scratch)
            return scratch
        }()
        return try measure(tier: options.tier, frames: options.frames, extractors: extractors, model: model,
                           receive: receiver(options.source), precision: options.precision)
    }

    /// Makes one sensor frame's input resident (a received message; nothing for files) and
    /// returns its decode (reads the files, or decodes the message, converting into the pool's
    /// buffers the layouts it cannot keep in place).
    typealias Receive = () throws -> Decode
    typealias Decode = (FrameBufferPool) throws -> Frame

    /// The sensor frame to time, afresh for every frame: the given files, read by the decode;
    /// or the synthetic frame encoded once as a wire message, copied into a `ReceivedMessage`
    /// of its own per frame — the parts in buffers libzmq allocates, as `cfm serve` holds a
    /// message it received — and decoded as `cfm serve` decodes it: in the message's own
    /// bytes, which the frame borrows.
    static func receiver(_ source: FrameSource) -> Receive {
        switch source {
        case let .files(rgb, xyz):
            return {
                { _ in
                    // Checked pixel-registered (a frame's colour and cloud have one size).
                    let files = try SensorFiles.readFrame(rgb: rgb, xyz: xyz, camera: nil)
                    return Frame(frameId: "bench", unit: .m, rgb: files.rgb, cloud: files.cloud)
                }
            }
        case let .synthetic(width, height):
            let (rgb, cloud) = BenchScene.make(width: width, height: height)
            let message = FrameCodec.encode(Frame(frameId: "bench", rgb: rgb, cloud: cloud))
            return {
                let received = ReceivedMessage(copying: message)
                return { try FrameCodec.decode(received, buffers: $0) }
            }
        }
    }

    /// `tier` nil: the bundle's (small for bare mapper files).
    static func measure(tier: Tier?, frames: Int, extractors: URL, model: URL, receive: Receive,
                        precision: PrecisionChoice) throws -> BenchReport {
        let tier = tier ?? (ModelBundle.hasManifest(model) ? nil : .small)
        let detector = try AnomalyDetector.load(extractors: extractors, model: model, tier: tier, precision: precision)
        // Frames are received, decoded, preprocessed and their pixels let go (buffers recycled,
        // message parts freed) as `cfm serve` does it.
        let preprocessor = detector.weights.preprocessor, workspace = PreprocessWorkspace(), frameBuffers = FrameBufferPool()
        var samples: [[(name: String, ms: Double)]] = [], subSamples: [[(name: String, ms: Double)]] = [], totals: [Double] = []
        var last: (Detection, FrameFeatures)?, sensor = (height: 0, width: 0)
        var first = BenchReport.Growth(), steady = BenchReport.Growth()
        var peak = 0.0 // the run's peak, carried over the peak resets
        for frame in 0...frames {
            var times = StageTimes(), subTimes = StageTimes()
            let warmUp = frame == 0
            // The first and the last frame measure memory growth: the peak is reset before each step.
            let measured = warmUp || frame == frames
            var resident = (beforeDecode: 0.0, decodePeak: 0.0, afterDecode: 0.0)
            let decode = try receive()
            if measured { peak = max(peak, ResidentMemory.peakMegabytes()); resident.beforeDecode = ResidentMemory.resetPeak() }
            var sensorFrame = try subTimes.measure("decode") { try decode(frameBuffers) }
            if measured { resident.decodePeak = ResidentMemory.peakMegabytes(); resident.afterDecode = ResidentMemory.resetPeak() }
            sensor = (sensorFrame.height, sensorFrame.width)
            let start = StageTimes.mark()
            // As the serve pipeline's preprocessing stage runs it: the frame's cloud edited in place.
            let preprocessed = try DetectorProcessing.prepare(&sensorFrame, preprocessor: preprocessor, workspace: workspace,
                                                              times: &times, subStages: &subTimes)
            if measured {
                let preprocessPeak = ResidentMemory.peakMegabytes()
                peak = max(peak, resident.decodePeak)
                let growth = BenchReport.Growth(decode: resident.decodePeak - resident.beforeDecode,
                                                preprocess: preprocessPeak - resident.afterDecode,
                                                frame: max(resident.decodePeak, preprocessPeak) - resident.beforeDecode)
                if warmUp { first = growth } else { steady = growth }
            }
            frameBuffers.recycle(&sensorFrame) // as the pipeline does once a frame is preprocessed: the message part is freed
            last = try detector.detect(preprocessed.input, times: &times)
            guard !warmUp else { continue }
            totals.append(Double(StageTimes.mark() - start) / 1e6)
            samples.append(times.stages)
            subSamples.append(subTimes.stages)
        }
        let (detection, features) = last!
        func medians(_ samples: [[(name: String, ms: Double)]]) -> [(name: String, ms: Double)] {
            samples[0].map(\.name).enumerated().map { i, name in (name: name, ms: median(samples.map { $0[i].ms })) }
        }
        let grid = detector.vit.config.grid, groups = detector.pointMAE.config.groups
        return BenchReport(
            tier: detector.tier, precision: detector.weights.precision, frames: frames, threads: cpuCount,
            stagesMs: medians(samples), preprocessStagesMs: medians(subSamples),
            firstGrowth: first, steadyGrowth: steady,
            peakResidentMB: max(peak, ResidentMemory.peakMegabytes()), sensorHeight: sensor.height, sensorWidth: sensor.width,
            stageFlops: ["extract2d": detector.vit.flops, "extract3d": detector.pointMAE.flops,
                         "map": detector.scorer!.flops(pixels: detection.validPixels, tokens: grid * grid, groups: groups)],
            medianMs: median(totals), foregroundPoints: features.foreground.count, validPixels: detection.validPixels)
    }

    /// Median of `values` (mean of the middle two for an even count; 0 when empty).
    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let s = values.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

/// What `BenchJob.run` measured: median timings of the detector's stages and of preprocessing's
/// sub-stages over the timed frames of one sensor frame, the memory a frame adds, the FLOPs.
public struct BenchReport: Sendable {
    /// Resident memory (MiB) a frame adds at its peak, from the resident size before its decode:
    /// by the decode (its frame's buffers: none for the synthetic rgb8 + xyz_f32le message, whose
    /// parts the frame borrows), by preprocessing (over the size after the decode), and by both
    /// (`frame`). The received message — a fresh copy per frame, made before this is measured,
    /// as libzmq holds a message before `cfm serve` decodes it — is resident before, so it is
    /// not counted: this is what the daemon adds to a received message. (The message encoded
    /// once, which each frame's copy is made from, stays resident through the run: `peakResidentMB`
    /// counts it and the copy.) For files, the decode reads them: their pixels count as the decode's.
    public struct Growth: Sendable, Equatable, Encodable {
        public var decode = 0.0, preprocess = 0.0, frame = 0.0
    }

    public let tier: Tier
    public let precision: Precision
    /// Timed frames (the warm-up frame aside), and the worker threads they ran on.
    public let frames: Int, threads: Int
    /// Stage → median milliseconds, in pipeline order.
    public let stagesMs: [(name: String, ms: Double)]
    /// Preprocessing sub-stage → median milliseconds: `decode` (before `preprocess`, not part
    /// of it or of the frame time), then the sub-stages of `stagesMs`' `preprocess`.
    public let preprocessStagesMs: [(name: String, ms: Double)]
    /// The warm-up frame's growth (fresh buffers and workspace: all of them count) and the last
    /// timed frame's (decoded into the buffers the frame before gave back, as `cfm serve` does).
    public let firstGrowth: Growth, steadyGrowth: Growth
    /// Peak resident MiB of the whole run.
    public let peakResidentMB: Double
    public let sensorHeight: Int, sensorWidth: Int
    /// Stage → FLOPs per frame (analytic count), for stages dominated by arithmetic.
    public let stageFlops: [String: Double]
    /// Median milliseconds of a whole frame: preprocess through score (the decode not included).
    public let medianMs: Double
    /// Foreground points after background removal, and the unmasked pixels scored, of the last frame.
    public let foregroundPoints: Int, validPixels: Int

    public var framesPerSecond: Double { 1000 / medianMs }

    /// Achieved GFLOP/s per stage.
    public var gflopsPerSecond: [String: Double] {
        let ms = Dictionary(uniqueKeysWithValues: stagesMs.map { ($0.name, $0.ms) })
        return Dictionary(uniqueKeysWithValues: stageFlops.map { ($0.key, $0.value / 1e6 / ms[$0.key]!) })
    }

    /// Preprocessing's median nanoseconds per sensor pixel.
    public var preprocessNsPerPixel: Double {
        (stagesMs.first { $0.name == "preprocess" }?.ms ?? 0) * 1e6 / Double(sensorHeight * sensorWidth)
    }

    /// The first and the last frame's `Growth.frame` in bytes per sensor pixel.
    public var growthBytesPerPixel: (first: Double, steady: Double) {
        let pixels = Double(sensorHeight * sensorWidth)
        return (firstGrowth.frame * 1_048_576 / pixels, steadyGrowth.frame * 1_048_576 / pixels)
    }
}

/// The JSON object `cfm bench` prints (scripts read these keys): `tier precision frames threads
/// median_ms fps peak_rss_mb stages_ms gflop gflops_per_s foreground_points valid_pixels`, and for
/// preprocessing `sensor` {height, width}, `preprocess_stages_ms`, `preprocess_ns_per_pixel`,
/// `rss_growth_mb` and `rss_growth_steady_mb` {decode, preprocess, frame} of the first and the
/// last frame, and `rss_growth_bytes_per_pixel` {first, steady}: their `frame` per sensor pixel.
extension BenchReport: Encodable {
    private enum Key: String, CodingKey {
        case tier, precision, frames, threads, medianMs = "median_ms", fps, peakResidentMB = "peak_rss_mb", sensor
        case preprocessStagesMs = "preprocess_stages_ms", preprocessNsPerPixel = "preprocess_ns_per_pixel"
        case firstGrowth = "rss_growth_mb", steadyGrowth = "rss_growth_steady_mb", growthBytesPerPixel = "rss_growth_bytes_per_pixel"
        case stagesMs = "stages_ms", gflop, gflopsPerSecond = "gflops_per_s"
        case foregroundPoints = "foreground_points", validPixels = "valid_pixels"
    }

    public func encode(to encoder: Encoder) throws {
        func byName(_ stages: [(name: String, ms: Double)]) -> [String: Double] {
            Dictionary(uniqueKeysWithValues: stages.map { ($0.name, $0.ms) })
        }
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(tier.rawValue, forKey: .tier)
        try c.encode(precision.rawValue, forKey: .precision)
        try c.encode(frames, forKey: .frames)
        try c.encode(threads, forKey: .threads)
        try c.encode(medianMs, forKey: .medianMs)
        try c.encode(framesPerSecond, forKey: .fps)
        try c.encode(peakResidentMB, forKey: .peakResidentMB)
        try c.encode(["height": sensorHeight, "width": sensorWidth], forKey: .sensor)
        try c.encode(byName(preprocessStagesMs), forKey: .preprocessStagesMs)
        try c.encode(preprocessNsPerPixel, forKey: .preprocessNsPerPixel)
        try c.encode(firstGrowth, forKey: .firstGrowth)
        try c.encode(steadyGrowth, forKey: .steadyGrowth)
        try c.encode(["first": growthBytesPerPixel.first, "steady": growthBytesPerPixel.steady], forKey: .growthBytesPerPixel)
        try c.encode(byName(stagesMs), forKey: .stagesMs)
        try c.encode(stageFlops.mapValues { $0 / 1e9 }, forKey: .gflop)
        try c.encode(gflopsPerSecond, forKey: .gflopsPerSecond)
        try c.encode(foregroundPoints, forKey: .foregroundPoints)
        try c.encode(validPixels, forKey: .validPixels)
    }
}
