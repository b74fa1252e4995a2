import ArgumentParser
import CFMData
import CFMDetector
import CFMService
import CFMTensor
import Foundation

extension RGBFormat: ExpressibleByArgument {}

/// `cfm replay`: a sensor simulator. Streams a dataset split as protocol-v1 frames,
/// listens to the results and prints a summary.
struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stream a dataset split (full-resolution PNG/TIFF) to cfm serve as protocol-v1 frames and summarise the results.")

    enum SendPattern: String, ExpressibleByArgument { case pub, push }
    enum SocketMode: String, ExpressibleByArgument { case bind, connect }

    @Option(help: "Split directory DATASET/CLASS/test (or a class directory: its test split).") var data: String
    @Option(help: "Frame endpoint (the daemon's input.endpoint).") var endpoint = "tcp://127.0.0.1:5555"
    @Option(help: "Result endpoint (the daemon's output.endpoint).") var results = "tcp://127.0.0.1:5556"
    @Option(help: "pub (default config: sub) or push (pull).") var pattern: SendPattern = .pub
    @Option(help: "bind (the default config connects to the sensor) or connect.") var mode: SocketMode = .bind
    @Option(help: "Frames per second (0 = as fast as the socket accepts).") var rate: Double = 2
    @Option(help: "Frames to send (0 = each sample once); samples repeat when larger.") var frames = 0
    @Option(help: "Make every N-th frame malformed, cycling through every kind (0 = never).") var malformedEvery = 0
    @Option(help: "Unit to send XYZ in: m or mm (values are converted).") var unit: LengthUnit = .m
    @Option(help: "Colour layout to send: rgb8, bgr8, rgba8, bgra8 or mono8 (the luma).") var rgbFormat: RGBFormat = .rgb8
    @Option(help: "Frame topic.") var topic = "frame"
    @Option(help: "Result topic prefix.") var resultPrefix = "result"
    @Option(help: "Seconds to wait for the connections before sending.") var warmup: Double = 1
    @Option(help: "Seconds to wait for the last results.") var timeout: Double = 30
    @Flag(help: "Print the summary as JSON.") var json = false

    /// The malformed kinds and the code the daemon must answer with.
    static let malformedKinds: [(kind: String, code: ErrorCode)] = [
        ("parts", .badParts), ("json", .badHeader), ("version", .badHeader), ("size", .badSize),
        ("large", .tooLarge), ("range", .outOfRange), ("empty", .tooFewPoints),
    ]

    func run() throws {
        let report = try stream()
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
        } else {
            printSummary(report)
        }
        let missing = report["missing"] as? Int ?? 0, mismatched = (report["malformed_mismatches"] as? [String])?.count ?? 0
        if missing > 0 || mismatched > 0 {
            throw CommandFailure("\(missing) frames without a result, \(mismatched) malformed frames answered with the wrong code")
        }
    }

    /// Streams the split and collects the results: the summary of `run`, plus `frames`, one
    /// `[frame_id, verdict, score]` entry per sent frame in send order.
    func stream() throws -> [String: Any] {
        let samples = try splitSamples()
        let total = frames > 0 ? frames : samples.count
        var cache: [Int: Frame] = [:]
        func frame(_ i: Int) throws -> Frame {
            let k = i % samples.count
            if let f = cache[k] { return f }
            let loaded = try samples[k].load()
            let cloud = unit == .m ? loaded.cloud : Tensor(shape: loaded.cloud.shape, scalars: loaded.cloud.scalars.map { $0 * 1000 })
            let f = Frame(frameId: "", unit: unit, rgb: loaded.rgb, cloud: cloud)
            if samples.count <= 256 { cache[k] = f }
            return f
        }

        let context = try ZMQContext()
        let sender = try ZMQSocket(context, pattern == .pub ? .pub : .push)
        try sender.sendHighWaterMark(pattern == .pub ? 1000 : 2)
        try sender.linger(milliseconds: 2000)
        try mode == .bind ? sender.bind(endpoint) : sender.connect(endpoint)
        let receiver = try ZMQSocket(context, .sub)
        try receiver.receiveHighWaterMark(100_000)
        try receiver.subscribe(resultPrefix)
        try receiver.connect(results)
        let collector = ResultCollector(socket: receiver)
        let thread = Thread { collector.loop() }
        thread.start()
        Thread.sleep(forTimeInterval: warmup)

        var expected: [String: ErrorCode] = [:] // frame id → expected error code (malformed)
        var sent: [String] = []
        let start = monotonicNs()
        let runId = String(UInt32(truncatingIfNeeded: wallClockNs()), radix: 36)
        for i in 0..<total {
            if rate > 0 {
                let due = start + UInt64(Double(i) / rate * 1e9)
                let now = monotonicNs()
                if due > now { usleep(UInt32(min((due - now) / 1000, UInt64(UInt32.max)))) }
            }
            var f = try frame(i)
            let sample = samples[i % samples.count]
            f.frameId = "\(runId)-\(i)-\(sample.defect)/\(sample.id)"
            var parts = FrameCodec.encode(f, topic: topic, rgb: rgbFormat)
            if malformedEvery > 0, (i + 1) % malformedEvery == 0 {
                let (kind, code) = Self.malformedKinds[((i + 1) / malformedEvery - 1) % Self.malformedKinds.count]
                f.frameId = "\(runId)-\(i)-malformed-\(kind)"
                parts = Self.malformed(kind, frame: f, topic: topic, rgb: rgbFormat)
                expected[f.frameId] = code
            }
            collector.sent(f.frameId, at: monotonicNs())
            try sender.send(parts)
            sent.append(f.frameId)
        }
        let sendSeconds = Double(monotonicNs() - start) / 1e9
        let deadline = Date(timeIntervalSinceNow: timeout)
        while collector.count(of: sent) < sent.count && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        collector.stop()
        while !thread.isFinished { usleep(1000) }
        sender.close()
        receiver.close()

        return collector.report(sent: sent, expectedErrors: expected, sendSeconds: sendSeconds)
    }

    private func splitSamples() throws -> [DatasetSample] {
        let url = URL(fileURLWithPath: data).standardizedFileURL
        if let split = DatasetSplit(rawValue: url.lastPathComponent) {
            return try datasetSamples(url.deletingLastPathComponent().path, split)
        }
        return try datasetSamples(url.path, .test)
    }

    /// A malformed message of `kind` built from a valid frame.
    static func malformed(_ kind: String, frame: Frame, topic: String, rgb: RGBFormat) -> [[UInt8]] {
        var parts = FrameCodec.encode(frame, topic: topic, rgb: rgb)
        func header(_ edit: (inout [String: Any]) -> Void) -> [UInt8] {
            var h = (try? JSONSerialization.jsonObject(with: Data(parts[1])) as? [String: Any]) ?? [:]
            edit(&h)
            return Array((try? JSONSerialization.data(withJSONObject: h)) ?? Data())
        }
        switch kind {
        case "parts": parts.removeLast()
        case "json": parts[1] = Array("{\"v\":1, \"frame_id\": \"\(frame.frameId)\", width".utf8)
        case "version": parts[1] = header { $0["v"] = 2 }
        case "size": parts[2].removeLast(3)
        case "large": parts[1] = header { $0["width"] = 100_000; $0["height"] = 100_000 }
        case "range":
            var xyz = frame.cloud.scalars
            xyz[xyz.count / 2] = 1e20
            parts[3] = FrameCodec.littleEndianBytes(xyz)
        case "empty": parts[3] = [UInt8](repeating: 0, count: parts[3].count)
        default: break
        }
        return parts
    }

    func printSummary(_ r: [String: Any]) {
        let verdicts = r["verdicts"] as? [String: Int] ?? [:]
        print("sent \(r["sent"] ?? 0) frames in \(String(format: "%.1f", r["send_seconds"] as? Double ?? 0)) s"
              + " (\(String(format: "%.2f", r["send_fps"] as? Double ?? 0)) frames/s)")
        print("results: " + Verdict.allCases.map { "\($0.rawValue) \(verdicts[$0.rawValue] ?? 0)" }.joined(separator: ", ")
              + ", missing \(r["missing"] ?? 0), out of order \(r["out_of_order"] ?? 0)")
        if let codes = r["error_codes"] as? [String: Int], !codes.isEmpty {
            print("errors: " + codes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        print(String(format: "latency (send → result, scored frames): p50 %.1f ms, p99 %.1f ms; daemon-side p50 %.1f ms, p99 %.1f ms",
                     r["p50_ms"] as? Double ?? 0, r["p99_ms"] as? Double ?? 0,
                     r["daemon_p50_ms"] as? Double ?? 0, r["daemon_p99_ms"] as? Double ?? 0))
        if let m = r["malformed_mismatches"] as? [String], !m.isEmpty { print("malformed answered wrongly: " + m.joined(separator: "; ")) }
    }
}

/// Collects results on its own thread (the SUB socket stays on it).
final class ResultCollector: @unchecked Sendable {
    private let socket: ZMQSocket
    private let lock = NSLock()
    private var sentAt: [String: UInt64] = [:]
    private var results: [String: (FrameResult, UInt64)] = [:]
    private var order: [String] = []
    private var anonymous: [FrameResult] = []
    private var stopped = false

    init(socket: ZMQSocket) { self.socket = socket }

    func sent(_ id: String, at t: UInt64) { lock.lock(); sentAt[id] = t; lock.unlock() }
    func stop() { lock.lock(); stopped = true; lock.unlock() }

    func count(of ids: [String]) -> Int {
        lock.lock(); defer { lock.unlock() }
        return results.count + anonymous.count
    }

    func loop() {
        while true {
            lock.lock(); let stop = stopped; lock.unlock()
            if stop { return }
            guard (try? socket.pollIn(milliseconds: 50)) == true else { continue }
            while let parts = try? socket.receive(wait: false), let result = try? FrameCodec.decodeResult(parts) {
                let now = monotonicNs()
                lock.lock()
                if let id = result.frameId, sentAt[id] != nil {
                    results[id] = (result, now)
                    order.append(id)
                } else {
                    anonymous.append(result)
                }
                lock.unlock()
            }
        }
    }

    func report(sent: [String], expectedErrors: [String: ErrorCode], sendSeconds: Double) -> [String: Any] {
        lock.lock(); defer { lock.unlock() }
        var verdicts: [String: Int] = [:], codes: [String: Int] = [:]
        var latencies: [Double] = [], daemon: [Double] = [], mismatches: [String] = []
        let frames: [[Any]] = sent.map { id in
            guard let (r, _) = results[id] else { return [id, "missing", NSNull()] }
            return [id, r.verdict.rawValue, r.score.map { Double($0) as Any } ?? NSNull()]
        }
        for id in sent {
            guard let (r, at) = results[id] else { continue }
            verdicts[r.verdict.rawValue, default: 0] += 1
            if let code = r.error?.code, r.verdict == .error { codes[code.rawValue, default: 0] += 1 }
            if r.verdict == .pass || r.verdict == .reject {
                latencies.append(Double(at - (sentAt[id] ?? at)) / 1e6)
                daemon.append(r.latencyMs)
            }
            if let want = expectedErrors[id], r.error?.code != want {
                mismatches.append("\(id): expected \(want.rawValue), got \(r.verdict.rawValue) \(r.error?.code.rawValue ?? "")")
            }
        }
        for r in anonymous {
            verdicts[r.verdict.rawValue, default: 0] += 1
            if let code = r.error?.code { codes[code.rawValue, default: 0] += 1 }
        }
        // Malformed frames without a readable id come back anonymously: count them as answered.
        let answered = sent.filter { results[$0] != nil }.count + anonymous.count
        let index = Dictionary(uniqueKeysWithValues: sent.enumerated().map { ($1, $0) })
        let positions = order.compactMap { index[$0] }
        let outOfOrder = zip(positions, positions.dropFirst()).filter { $0 >= $1 }.count
        func pct(_ v: [Double], _ q: Double) -> Double {
            let s = v.sorted()
            return s.isEmpty ? 0 : s[min(s.count - 1, Int((q * Double(s.count - 1)).rounded()))]
        }
        return [
            "sent": sent.count, "send_seconds": sendSeconds, "send_fps": Double(sent.count) / max(sendSeconds, 1e-9),
            "results": answered, "missing": max(0, sent.count - answered), "out_of_order": outOfOrder,
            "verdicts": verdicts, "error_codes": codes, "malformed_mismatches": mismatches,
            "p50_ms": pct(latencies, 0.5), "p99_ms": pct(latencies, 0.99),
            "daemon_p50_ms": pct(daemon, 0.5), "daemon_p99_ms": pct(daemon, 0.99),
            "frames": frames,
        ]
    }
}
