import ArgumentParser
import CFMDetector
import CFMModels
import CFMService
import Foundation

/// `cfm bench`: per-stage timings of the pipeline (`BenchJob`) on a synthetic frame or given
/// files, with seeded random weights of the real size by default; one JSON object on stdout.
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

    func validate() throws {
        guard frames >= 1 else { throw ValidationError("--frames must be at least 1") }
        guard (rgb == nil) == (xyz == nil) else { throw ValidationError("--rgb and --xyz go together") }
    }

    func run() throws {
        var options = BenchJob.Options()
        (options.tier, options.frames, options.precision) = (tier, frames, precision.choice)
        options.extractors = extractors.map { URL(fileURLWithPath: $0) }
        options.model = model.map { URL(fileURLWithPath: $0) }
        if let rgb, let xyz {
            options.source = .files(rgb: URL(fileURLWithPath: rgb), xyz: URL(fileURLWithPath: xyz))
        } else {
            options.source = .synthetic(width: sensorSize.width, height: sensorSize.height)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try encoder.encode(try BenchJob.run(options)), as: UTF8.self))
    }
}

/// `--sensor-size`: a side (`800`, square) or `WIDTHxHEIGHT` (`2448x2048`).
struct SensorSize: ExpressibleByArgument {
    let width: Int, height: Int

    init(width: Int, height: Int) { (self.width, self.height) = (width, height) }

    init?(argument: String) {
        let sides = argument.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
        guard (1...2).contains(sides.count), sides.allSatisfy({ ($0 ?? 0) >= 1 }) else { return nil }
        (width, height) = (sides[0]!, sides.last!!)
    }

    var defaultValueDescription: String { width == height ? "\(width)" : "\(width)x\(height)" }
}
