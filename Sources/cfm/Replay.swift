import ArgumentParser
import CFMData
import CFMDetector
import CFMService
import Foundation

extension RGBFormat: ExpressibleByArgument {}
extension ReplayJob.SendPattern: ExpressibleByArgument {}
extension ReplayJob.SocketMode: ExpressibleByArgument {}

/// `cfm replay`: a sensor simulator. Streams a dataset split as protocol-v1 frames,
/// listens to the results and prints a summary (the work is `ReplayJob`).
struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stream a dataset split (full-resolution PNG/TIFF) to cfm serve as protocol-v1 frames and summarise the results.",
        discussion: """
            The split's files may be in any layout `cfm infer` reads: colour PNG or 8-bit TIFF (RGB, RGBA, grey); \
            XYZ float32 TIFF, or depth as float32 TIFF (metres) or 16-bit PNG/TIFF with --intrinsics (and --depth-scale). \
            NaN or infinite coordinates and zero depth are holes.
            """)

    @Option(help: "Split directory DATASET/CLASS/test (or a class directory: its test split).") var data: String
    @Option(help: "Frame endpoint (the daemon's input.endpoint).") var endpoint = "tcp://127.0.0.1:5555"
    @Option(help: "Result endpoint (the daemon's output.endpoint).") var results = "tcp://127.0.0.1:5556"
    @Option(help: "pub (default config: sub) or push (pull).") var pattern: ReplayJob.SendPattern = .pub
    @Option(help: "bind (the default config connects to the sensor) or connect.") var mode: ReplayJob.SocketMode = .bind
    @Option(help: "Frames per second (0 = as fast as the socket accepts).") var rate: Double = 2
    @Option(help: "Frames to send (0 = each sample once); samples repeat when larger.") var frames = 0
    @Option(help: "Make every N-th frame malformed, cycling through every kind (0 = never).") var malformedEvery = 0
    @Option(help: "Unit to send XYZ in: m or mm (values are converted).") var unit: LengthUnit = .m
    @Option(help: "Colour layout to send: rgb8, bgr8, rgba8, bgra8 or mono8 (the luma).") var rgbFormat: RGBFormat = .rgb8
    @OptionGroup var depth: DepthOptions
    @Option(help: "Frame topic.") var topic = "frame"
    @Option(help: "Result topic prefix.") var resultPrefix = "result"
    @Option(help: "Seconds to wait for the connections before sending.") var warmup: Double = 1
    @Option(help: "Seconds to wait for the last results.") var timeout: Double = 30
    @Flag(help: "Print the summary as JSON.") var json = false

    func run() throws {
        var options = ReplayJob.Options(data: URL(fileURLWithPath: data))
        (options.endpoint, options.results, options.pattern, options.mode) = (endpoint, results, pattern, mode)
        (options.rate, options.frames, options.malformedEvery) = (rate, frames, malformedEvery)
        (options.unit, options.rgbFormat, options.topic, options.resultPrefix) = (unit, rgbFormat, topic, resultPrefix)
        options.camera = depth.camera
        (options.warmup, options.timeout) = (warmup, timeout)
        let result = try ReplayJob.run(options)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
        } else {
            Self.printSummary(result)
        }
        let mismatched = result.malformedMismatches.count
        if result.missing > 0 || mismatched > 0 {
            throw CommandFailure("\(result.missing) frames without a result, \(mismatched) malformed frames answered with the wrong code")
        }
    }

    /// The human summary: send rate, verdict and error counts, latencies, wrong codes.
    static func printSummary(_ r: ReplayJob.Result) {
        print("sent \(r.sent) frames in \(String(format: "%.1f", r.sendSeconds)) s (\(String(format: "%.2f", r.sendFPS)) frames/s)")
        let verdicts = r.verdicts
        print("results: " + Verdict.allCases.map { "\($0.rawValue) \(verdicts[$0] ?? 0)" }.joined(separator: ", ")
              + ", missing \(r.missing), out of order \(r.outOfOrder)"
              + "; \(r.heartbeats) heartbeats, the last counting \(r.daemonUndelivered) undelivered")
        let codes = r.errorCodes
        if !codes.isEmpty {
            print("errors: " + codes.map { ($0.key.rawValue, $0.value) }.sorted { $0.0 < $1.0 }.map { "\($0.0) \($0.1)" }.joined(separator: ", "))
        }
        print(String(format: "latency (send → result, scored frames): p50 %.1f ms, p99 %.1f ms; daemon-side p50 %.1f ms, p99 %.1f ms",
                     r.roundTripMs(quantile: 0.5), r.roundTripMs(quantile: 0.99), r.daemonMs(quantile: 0.5), r.daemonMs(quantile: 0.99)))
        let mismatches = r.malformedMismatches
        if !mismatches.isEmpty { print("malformed answered wrongly: " + mismatches.joined(separator: "; ")) }
    }
}
