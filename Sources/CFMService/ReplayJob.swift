import CFMData
import CFMDetector
import CFMTensor
import Foundation

/// Why a replay stopped before streaming: a one-line reason naming what was wrong.
public struct ReplayError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The sensor simulator as a library job: streams a dataset split to a running daemon as
/// protocol-v1 frames (optionally every N-th one malformed), collects the result stream and
/// returns one typed outcome per sent frame. `cfm replay` and `cfm demo` parse, call `run`, print.
public enum ReplayJob {
    /// The frame socket's pattern: `pub` (the daemon's input is `sub`) or `push` (`pull`).
    public enum SendPattern: String, Sendable, CaseIterable { case pub, push }
    /// Whether the frame socket binds (the default daemon config connects to the sensor) or connects.
    public enum SocketMode: String, Sendable, CaseIterable { case bind, connect }

    /// The ways a frame is broken on purpose, each with the code the daemon must answer with.
    public enum MalformedKind: String, Sendable, CaseIterable {
        case parts, json, version, size, large, range, empty

        /// The error code the daemon must publish for this kind.
        public var expectedCode: ErrorCode {
            switch self {
            case .parts: .badParts
            case .json, .version: .badHeader
            case .size: .badSize
            case .large: .tooLarge
            case .range: .outOfRange
            case .empty: .tooFewPoints
            }
        }

        /// False when the header is unreadable, so the daemon's answer carries no frame id.
        public var carriesFrameId: Bool { self != .json }

        /// The message of this kind built from the valid `frame`.
        public func message(_ frame: Frame, topic: String, rgb: RGBFormat) -> [[UInt8]] {
            var parts = FrameCodec.encode(frame, topic: topic, rgb: rgb)
            func header(_ edit: (inout [String: Any]) -> Void) -> [UInt8] {
                var h = (try? JSONSerialization.jsonObject(with: Data(parts[1])) as? [String: Any]) ?? [:]
                edit(&h)
                return Array((try? JSONSerialization.data(withJSONObject: h)) ?? Data())
            }
            switch self {
            case .parts: parts.removeLast()
            case .json: parts[1] = Array("{\"v\":1, \"frame_id\": \"\(frame.frameId)\", width".utf8)
            case .version: parts[1] = header { $0["v"] = 2 }
            case .size: parts[2].removeLast(3)
            case .large: parts[1] = header { $0["width"] = 100_000; $0["height"] = 100_000 }
            case .range:
                var xyz = Array(frame.cloud)
                xyz[xyz.count / 2] = 1e20
                parts[3] = FrameCodec.littleEndianBytes(xyz)
            case .empty: parts[3] = [UInt8](repeating: 0, count: parts[3].count)
            }
            return parts
        }
    }

    public struct Options: Sendable {
        /// Split directory `DATASET/CLASS/<split>`, or a class directory (its test split).
        public var data: URL
        /// The daemon's input endpoint (frames go here) and output endpoint (results come from here).
        public var endpoint = "tcp://127.0.0.1:5555"
        public var results = "tcp://127.0.0.1:5556"
        public var pattern: SendPattern = .pub
        public var mode: SocketMode = .bind
        /// Frames per second; 0 = as fast as the socket accepts.
        public var rate: Double = 2
        /// Frames to send; 0 = each sample once. Samples repeat when larger.
        public var frames = 0
        /// Every N-th frame is malformed, cycling through `MalformedKind.allCases`; 0 = never.
        public var malformedEvery = 0
        /// The unit XYZ is sent in (metres from the dataset, converted for `.mm`).
        public var unit: LengthUnit = .m
        /// Back-projects the split's depth images (`SensorFiles`); nil when its `xyz` files are XYZ.
        public var camera: DepthCamera?
        public var rgbFormat: RGBFormat = .rgb8
        public var topic = "frame"
        public var resultPrefix = "result"
        /// Seconds to wait for the connections before sending, and for the last results after.
        public var warmup: Double = 1
        public var timeout: Double = 30

        public init(data: URL) { self.data = data }
    }

    /// One sent frame and what came back for it.
    public struct FrameOutcome: Sendable {
        /// The id sent: `<run>-<index>-<defect>/<sample>` or `<run>-<index>-malformed-<kind>`.
        public var frameId: String
        /// The dataset sample's key (`defect/id`); nil for a malformed frame.
        public var sample: String?
        public var malformed: MalformedKind?
        /// The daemon's result; nil = none arrived within the timeout.
        public var result: FrameResult?
        /// Send → result receipt on this host, milliseconds; nil without a result or when it
        /// was paired by order (no frame id).
        public var roundTripMs: Double?

        /// True when a malformed frame was answered with another code than its kind's.
        public var isMismatched: Bool {
            guard let malformed, let result else { return false }
            return result.error?.code != malformed.expectedCode
        }
    }

    public struct Result: Sendable {
        /// One entry per sent frame, in send order.
        public var frames: [FrameOutcome]
        /// Results that matched no sent frame (no id, and no unanswered id-less frame left).
        public var unmatched: [FrameResult]
        /// Seconds spent sending.
        public var sendSeconds: Double
        /// Results whose frame ids arrived in another order than sent (consecutive inversions).
        public var outOfOrder: Int
        /// Heartbeats seen, and the undelivered count of the last one.
        public var heartbeats: Int
        public var daemonUndelivered: Int

        public var sent: Int { frames.count }
        public var sendFPS: Double { Double(sent) / max(sendSeconds, 1e-9) }
        /// Results received (paired or not).
        public var answered: Int { frames.filter { $0.result != nil }.count + unmatched.count }
        public var missing: Int { max(0, sent - answered) }
        private var allResults: [FrameResult] { frames.compactMap(\.result) + unmatched }
        public var verdicts: [Verdict: Int] { allResults.reduce(into: [:]) { $0[$1.verdict, default: 0] += 1 } }
        public var errorCodes: [ErrorCode: Int] {
            allResults.reduce(into: [:]) { counts, r in if let code = r.error?.code { counts[code, default: 0] += 1 } }
        }
        /// The malformed frames answered with the wrong code, one line each.
        public var malformedMismatches: [String] {
            frames.filter(\.isMismatched).map { f in
                "\(f.frameId): expected \(f.malformed!.expectedCode.rawValue), got \(f.result!.verdict.rawValue) \(f.result!.error?.code.rawValue ?? "")"
            }
        }
        private var scored: [FrameOutcome] { frames.filter { $0.result?.verdict == .pass || $0.result?.verdict == .reject } }
        /// Send → result latency of scored frames, milliseconds, at quantile `q` (0 without any).
        public func roundTripMs(quantile q: Double) -> Double { Self.quantile(scored.compactMap(\.roundTripMs), q) }
        /// The daemon's own latency (`latency_ms`) of scored frames at quantile `q`.
        public func daemonMs(quantile q: Double) -> Double { Self.quantile(scored.compactMap { $0.result?.latencyMs }, q) }

        static func quantile(_ values: [Double], _ q: Double) -> Double {
            let s = values.sorted()
            return s.isEmpty ? 0 : s[min(s.count - 1, Int((q * Double(s.count - 1)).rounded()))]
        }
    }

    /// Streams the split and collects the results until each frame has one or `timeout` passes.
    public static func run(_ options: Options) throws -> Result {
        let samples = try splitSamples(options.data)
        let total = options.frames > 0 ? options.frames : samples.count
        var cache: [Int: Frame] = [:]
        func frame(_ i: Int) throws -> Frame {
            let k = i % samples.count
            if let f = cache[k] { return f }
            let loaded = try samples[k].load(camera: options.camera)
            let cloud = options.unit == .m ? loaded.cloud : Tensor(shape: loaded.cloud.shape, scalars: loaded.cloud.scalars.map { $0 * 1000 })
            let f = Frame(frameId: "", unit: options.unit, rgb: loaded.rgb, cloud: cloud)
            if samples.count <= 256 { cache[k] = f }
            return f
        }

        let context = try ZMQContext()
        let sender = try ZMQSocket(context, options.pattern == .pub ? .pub : .push)
        try sender.sendHighWaterMark(options.pattern == .pub ? 1000 : 2)
        try sender.linger(milliseconds: 2000)
        try options.mode == .bind ? sender.bind(options.endpoint) : sender.connect(options.endpoint)
        let receiver = try ZMQSocket(context, .sub)
        try receiver.receiveHighWaterMark(100_000)
        try receiver.subscribe(options.resultPrefix)
        try receiver.connect(options.results)
        let collector = ResultCollector(socket: receiver)
        let thread = Thread { collector.loop() }
        thread.start()
        defer {
            collector.stop()
            while !thread.isFinished { usleep(1000) }
            sender.close()
            receiver.close()
        }
        Thread.sleep(forTimeInterval: options.warmup)

        var outcomes: [FrameOutcome] = []
        let start = monotonicNs()
        let runId = String(UInt32(truncatingIfNeeded: wallClockNs()), radix: 36)
        for i in 0..<total {
            if options.rate > 0 {
                let due = start + UInt64(Double(i) / options.rate * 1e9)
                let now = monotonicNs()
                if due > now { usleep(UInt32(min((due - now) / 1000, UInt64(UInt32.max)))) }
            }
            var f = try frame(i)
            let sample = samples[i % samples.count]
            var outcome = FrameOutcome(frameId: "\(runId)-\(i)-\(sample.key)", sample: sample.key)
            f.frameId = outcome.frameId
            var parts = FrameCodec.encode(f, topic: options.topic, rgb: options.rgbFormat)
            if options.malformedEvery > 0, (i + 1) % options.malformedEvery == 0 {
                let kinds = MalformedKind.allCases
                let kind = kinds[((i + 1) / options.malformedEvery - 1) % kinds.count]
                outcome = FrameOutcome(frameId: "\(runId)-\(i)-malformed-\(kind.rawValue)", malformed: kind)
                f.frameId = outcome.frameId
                parts = kind.message(f, topic: options.topic, rgb: options.rgbFormat)
            }
            collector.sent(outcome.frameId, at: monotonicNs())
            try sender.send(parts)
            outcomes.append(outcome)
        }
        let sendSeconds = Double(monotonicNs() - start) / 1e9
        let deadline = Date(timeIntervalSinceNow: options.timeout)
        while collector.received < outcomes.count && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        collector.stop()
        return collector.result(pairing: outcomes, sendSeconds: sendSeconds)
    }

    /// The samples of the split directory (or of a class directory's test split), sorted.
    static func splitSamples(_ data: URL) throws -> [DatasetSample] {
        let url = data.standardizedFileURL
        let split = DatasetSplit(rawValue: url.lastPathComponent)
        let samples = try MVTec3DClass(directory: split == nil ? url : url.deletingLastPathComponent()).samples(split ?? .test)
        guard !samples.isEmpty else { throw ReplayError("\(data.relativePath): no samples in the \((split ?? .test).rawValue) split") }
        return samples
    }
}

/// The summary `cfm replay --json` prints (scripts read these keys): counts, latency quantiles
/// and `frames`, one `[frame_id, verdict or "missing", score or null]` entry per sent frame.
extension ReplayJob.Result: Encodable {
    private enum Key: String, CodingKey {
        case sent, sendSeconds = "send_seconds", sendFPS = "send_fps", results, missing, outOfOrder = "out_of_order"
        case verdicts, errorCodes = "error_codes", malformedMismatches = "malformed_mismatches"
        case p50 = "p50_ms", p99 = "p99_ms", daemonP50 = "daemon_p50_ms", daemonP99 = "daemon_p99_ms"
        case frames, heartbeats, daemonUndelivered = "daemon_undelivered"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(sent, forKey: .sent)
        try c.encode(sendSeconds, forKey: .sendSeconds)
        try c.encode(sendFPS, forKey: .sendFPS)
        try c.encode(answered, forKey: .results)
        try c.encode(missing, forKey: .missing)
        try c.encode(outOfOrder, forKey: .outOfOrder)
        try c.encode(Dictionary(uniqueKeysWithValues: verdicts.map { ($0.key.rawValue, $0.value) }), forKey: .verdicts)
        try c.encode(Dictionary(uniqueKeysWithValues: errorCodes.map { ($0.key.rawValue, $0.value) }), forKey: .errorCodes)
        try c.encode(malformedMismatches, forKey: .malformedMismatches)
        try c.encode(roundTripMs(quantile: 0.5), forKey: .p50)
        try c.encode(roundTripMs(quantile: 0.99), forKey: .p99)
        try c.encode(daemonMs(quantile: 0.5), forKey: .daemonP50)
        try c.encode(daemonMs(quantile: 0.99), forKey: .daemonP99)
        var list = c.nestedUnkeyedContainer(forKey: .frames)
        for f in frames {
            var entry = list.nestedUnkeyedContainer()
            try entry.encode(f.frameId)
            try entry.encode(f.result?.verdict.rawValue ?? "missing")
            if let score = f.result?.score, score.isFinite { try entry.encode(Double(score)) } else { try entry.encodeNil() }
        }
        try c.encode(heartbeats, forKey: .heartbeats)
        try c.encode(daemonUndelivered, forKey: .daemonUndelivered)
    }
}

/// Collects the result stream on its own thread (the SUB socket stays on it).
final class ResultCollector: @unchecked Sendable {
    private let socket: ZMQSocket
    private let lock = NSLock()
    private var sentAt: [String: UInt64] = [:]
    /// Results with a sent frame id → (result, receipt time ns, arrival index).
    private var byId: [String: (result: FrameResult, at: UInt64, arrival: Int)] = [:]
    private var arrivals = 0
    private var anonymous: [FrameResult] = []
    private var heartbeats = 0
    private var lastHeartbeat: Heartbeat?
    private var stopped = false

    init(socket: ZMQSocket) { self.socket = socket }

    func sent(_ id: String, at t: UInt64) { lock.lock(); sentAt[id] = t; lock.unlock() }
    func stop() { lock.lock(); stopped = true; lock.unlock() }

    /// Results received so far (with or without a known frame id).
    var received: Int { lock.lock(); defer { lock.unlock() }; return byId.count + anonymous.count }

    func loop() {
        while true {
            lock.lock(); let stop = stopped; lock.unlock()
            if stop { return }
            guard (try? socket.pollIn(milliseconds: 50)) == true else { continue }
            while let parts = try? socket.receive(wait: false) {
                if let beat = Heartbeat.decode(parts) {
                    lock.lock(); heartbeats += 1; lastHeartbeat = beat; lock.unlock()
                    continue
                }
                guard let result = try? FrameCodec.decodeResult(parts) else { continue }
                let now = monotonicNs()
                lock.lock()
                if let id = result.frameId, sentAt[id] != nil {
                    byId[id] = (result, now, arrivals)
                    arrivals += 1
                } else {
                    anonymous.append(result)
                }
                lock.unlock()
            }
        }
    }

    /// Pairs the results with the sent frames: by frame id, and the id-less results in arrival
    /// order with the unanswered frames whose header was unreadable (every such frame is
    /// malformed the same way, so their order cannot mislabel a code).
    func result(pairing sent: [ReplayJob.FrameOutcome], sendSeconds: Double) -> ReplayJob.Result {
        lock.lock(); defer { lock.unlock() }
        var frames = sent, idLess = anonymous[...]
        var arrivalOrder: [Int] = []
        for i in frames.indices {
            if let (r, at, arrival) = byId[frames[i].frameId] {
                frames[i].result = r
                frames[i].roundTripMs = Double(at - (sentAt[frames[i].frameId] ?? at)) / 1e6
                arrivalOrder.append(arrival)
            } else if frames[i].malformed?.carriesFrameId == false, let r = idLess.popFirst() {
                frames[i].result = r
            }
        }
        // Send positions in arrival order: count the consecutive inversions.
        let positions = arrivalOrder.enumerated().sorted { $0.element < $1.element }.map(\.offset)
        let outOfOrder = zip(positions, positions.dropFirst()).filter { $0 >= $1 }.count
        return ReplayJob.Result(frames: frames, unmatched: Array(idLess), sendSeconds: sendSeconds, outOfOrder: outOfOrder,
                                heartbeats: heartbeats, daemonUndelivered: lastHeartbeat?.undelivered ?? 0)
    }
}
