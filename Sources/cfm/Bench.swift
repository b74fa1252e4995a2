import ArgumentParser
import CFMModels
import CFMTensor
import Foundation

/// `cfm bench`: per-stage timings of the pipeline on a synthetic frame with seeded random
/// weights of the real size; one JSON object on stdout.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmark a tier: per-stage median ms, frames/s, peak RSS, achieved GFLOP/s (JSON on stdout).")

    @Option(help: "Pruning tier: tiny, small, medium or full.") var tier: Tier = .small
    @Option(help: "Timed frames (after one warm-up frame).") var frames: Int = 10
    @Option(help: "Directory with extractor weights; default: seeded random weights in a temporary directory.")
    var extractors: String?

    func validate() throws {
        guard frames >= 1 else { throw ValidationError("--frames must be at least 1") }
    }

    func run() throws {
        let report: BenchReport
        if let extractors {
            report = try BenchReport.measure(tier: tier, frames: frames, extractors: URL(fileURLWithPath: extractors))
        } else {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cfm-bench-\(getpid())")
            defer { try? FileManager.default.removeItem(at: dir) }
            try InitWeights.write(seed: 0, to: dir)
            report = try BenchReport.measure(tier: tier, frames: frames, extractors: dir)
        }
        print(try report.json())
    }
}

/// Median timings of `frames` runs of the pipeline stages that exist so far.
struct BenchReport {
    let tier: Tier
    let frames: Int
    /// Stage → median milliseconds.
    let stagesMs: [String: Double]
    /// Stage → FLOPs per frame (analytic count), for stages dominated by arithmetic.
    let stageFlops: [String: Double]
    let medianMs: Double

    static func measure(tier: Tier, frames: Int, extractors: URL) throws -> BenchReport {
        let vit = try VisionTransformer.load(extractors: extractors, tier: tier)
        let c = vit.config
        var rng = SeededRandom(seed: 7)
        let image = Tensor(shape: [c.channels, c.imageSize, c.imageSize],
                           scalars: (0..<(c.channels * c.imageSize * c.imageSize)).map { _ in rng.uniform(-2, 2) })
        var workspace = vit.makeWorkspace()
        var samples: [String: [Double]] = [:]
        var totals: [Double] = []
        for frame in 0...frames {
            let t0 = nowMilliseconds()
            let features = vit.features(image: image, workspace: &workspace)
            let t1 = nowMilliseconds()
            _ = vit.upsample(features)
            let t2 = nowMilliseconds()
            guard frame > 0 else { continue }  // warm-up
            samples["extract2d", default: []].append(t1 - t0)
            samples["upsample2d", default: []].append(t2 - t1)
            totals.append(t2 - t0)
        }
        return BenchReport(tier: tier, frames: frames, stagesMs: samples.mapValues(median),
                           stageFlops: ["extract2d": vit.flops], medianMs: median(totals))
    }

    /// Achieved GFLOP/s per stage.
    var gflopsPerSecond: [String: Double] {
        Dictionary(uniqueKeysWithValues: stageFlops.map { ($0.key, $0.value / 1e6 / stagesMs[$0.key]!) })
    }

    /// The JSON object of DESIGN.md §5 (`tier frames median_ms fps peak_rss_mb stages_ms gflops_per_s`).
    func json() throws -> String {
        let object: [String: Any] = [
            "tier": tier.rawValue, "frames": frames, "threads": cpuCount,
            "median_ms": medianMs, "fps": 1000 / medianMs,
            "peak_rss_mb": peakResidentMegabytes(),
            "stages_ms": stagesMs,
            "gflop": stageFlops.mapValues { $0 / 1e9 },
            "gflops_per_s": gflopsPerSecond,
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
        return String(decoding: data, as: UTF8.self)
    }
}
