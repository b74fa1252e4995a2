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
        let vit = try withExtractors { try VisionTransformer.load(extractors: $0, tier: tier) }
        var rng = SeededRandom(seed: 7)
        let c = vit.config
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
        let stages = samples.mapValues(median)
        let flops = ["extract2d": vit.flops]
        let report: [String: Any] = [
            "tier": tier.rawValue, "frames": frames, "threads": cpuCount,
            "median_ms": median(totals), "fps": 1000 / median(totals),
            "peak_rss_mb": peakResidentMegabytes(),
            "stages_ms": stages,
            "gflops": flops.mapValues { $0 / 1e9 },
            "gflops_per_s": Dictionary(uniqueKeysWithValues: flops.map { ($0.key, $0.value / 1e6 / stages[$0.key]!) }),
        ]
        let json = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys, .prettyPrinted])
        print(String(decoding: json, as: UTF8.self))
    }

    /// Runs `load` on `--extractors`, or on freshly generated seeded weights.
    private func withExtractors<T>(_ load: (URL) throws -> T) throws -> T {
        if let extractors { return try load(URL(fileURLWithPath: extractors)) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cfm-bench-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        try InitWeights.write(seed: 0, to: dir)
        return try load(dir)
    }
}
