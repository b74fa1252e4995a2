import CZeroMQ
import Foundation

/// The daemon's liveness message on the result stream, topic `<prefix>.heartbeat`: a
/// subscriber tells an idle line from a dead daemon, and compares `last_seq` with the
/// results it saw to know what it missed. Counters since the process started.
public struct Heartbeat: Codable, Sendable, Equatable {
    public var v = FrameCodec.version
    public var received: Int
    /// Results answered / of those, results that did not reach every consumer (see `PipelineStats`).
    public var published: Int
    public var undelivered: Int
    public var pass: Int
    public var reject: Int
    public var error: Int
    public var dropped: Int
    /// Frames waiting for preprocessing / in the preprocessing stage (being preprocessed, or
    /// preprocessed and waiting for a worker) / in inference now.
    public var queued: Int
    public var preparing: Int
    public var inFlight: Int
    /// Seconds since the daemon started serving.
    public var uptimeS: Double
    /// Sequence number of the last result sent or refused (results are numbered 1, 2, …; 0 = none yet).
    public var lastSeq: UInt64
    /// Wall-clock (CLOCK_REALTIME) nanoseconds when the heartbeat was sent.
    public var timeNs: Int64

    enum CodingKeys: String, CodingKey {
        case v, received, published, undelivered, pass, reject, error, dropped, queued, preparing
        case inFlight = "in_flight", uptimeS = "uptime_s", lastSeq = "last_seq", timeNs = "time_ns"
    }

    public init(_ s: PipelineStats, uptimeS: Double, timeNs: Int64 = wallClockNs()) {
        (received, published, undelivered) = (s.received, s.published, s.undelivered)
        (pass, reject, error, dropped) = (s.passed, s.rejected, s.errors, s.dropped)
        (queued, preparing, inFlight, lastSeq) = (s.queued, s.preparing, s.inFlight, s.lastSequence)
        (self.uptimeS, self.timeNs) = (uptimeS, timeNs)
    }

    /// The topic part: `<prefix>.heartbeat` (results use `<prefix>.<verdict>`).
    public static func topic(prefix: String) -> String { "\(prefix).heartbeat" }

    /// A heartbeat message: [topic, JSON].
    public func encode(topicPrefix: String) throws -> [[UInt8]] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return [Array(Self.topic(prefix: topicPrefix).utf8), Array(try encoder.encode(self))]
    }

    /// The heartbeat in a message from the result stream; nil when it is not one (a result).
    public static func decode(_ parts: [[UInt8]]) -> Heartbeat? {
        guard parts.count == 2, String(decoding: parts[0], as: UTF8.self).hasSuffix(".heartbeat") else { return nil }
        return try? JSONDecoder().decode(Heartbeat.self, from: Data(parts[1]))
    }
}

/// The publisher's end of the result stream, used from the publisher thread only.
public protocol ResultOutput: AnyObject {
    /// Offers one message, waiting up to `waitMs` while a peer's queue is full (0 = not at
    /// all). Returns whether it was taken — PUB: by every subscriber, or by none.
    func offer(_ parts: [[UInt8]], waitMs: Int) throws -> Bool
    /// Closes the output, leaving `lingerMs` to flush what it already took.
    func close(lingerMs: Int)
}

extension ZMQSocket: ResultOutput {
    /// PUB sockets must have ZMQ_XPUB_NODROP set (`refuseWhenAnySubscriberIsFull`).
    public func offer(_ parts: [[UInt8]], waitMs: Int) throws -> Bool {
        guard waitMs > 0 else { return try send(parts, wait: false) }
        try setOption(ZMQ_SNDTIMEO, Int32(waitMs))
        return try send(parts)
    }

    /// PUB: refuse a message while any matching subscriber's queue is full, instead of
    /// dropping it silently for that subscriber (ZMQ_XPUB_NODROP). All or nothing: libzmq
    /// cannot skip one subscriber and still tell (a lossy send to a full subscriber
    /// detaches it, and it then misses every later message unseen).
    public func refuseWhenAnySubscriberIsFull() throws {
        precondition(kind == .pub)
        try setOption(ZMQ_XPUB_NODROP, Int32(1))
    }

    public func close(lingerMs: Int) {
        try? linger(milliseconds: lingerMs)
        close()
    }
}

/// The result stream's only writer: takes the pipeline's results in order, numbers them
/// (`seq` 1, 2, …, so a subscriber sees gaps), sends them, counts the ones that did not
/// reach every consumer as undelivered, and sends a `Heartbeat` every
/// `heartbeatIntervalS`. Runs on its own thread, which owns the output socket and closes
/// it when it ends.
///
/// - `pub` (best effort, any number of subscribers): a result goes to every subscriber or
///   to none. While one subscriber's queue is full (it stopped reading) the socket refuses
///   it — after `sendTimeoutMs` the first time, at once while the queue stays full, so a
///   stuck subscriber cannot slow the line — and it is counted as undelivered: every
///   subscriber sees the gap in `seq`. Heartbeats never wait.
/// - `push` (lossless, one consumer): waits for the consumer as long as it takes; the
///   pipeline's backlog fills and the receive side applies the overflow policy. Only at
///   shutdown, results the consumer has not taken by the flush deadline are undelivered.
public final class ResultPublisher: @unchecked Sendable {
    public struct Options: Sendable {
        public var pattern: ServiceConfig.OutputPattern
        public var topicPrefix: String
        public var includeMaps: Bool
        /// PUB: milliseconds a full subscriber may hold a result before it counts as undelivered.
        public var sendTimeoutMs: Int
        /// Seconds between heartbeats (0 = none).
        public var heartbeatIntervalS: Double

        public init(pattern: ServiceConfig.OutputPattern = .pub, topicPrefix: String = "result", includeMaps: Bool = false,
                    sendTimeoutMs: Int = 100, heartbeatIntervalS: Double = 2) {
            (self.pattern, self.topicPrefix, self.includeMaps, self.sendTimeoutMs, self.heartbeatIntervalS) =
                (pattern, topicPrefix, includeMaps, sendTimeoutMs, heartbeatIntervalS)
        }
    }

    /// Sees every result after its send (on the publisher thread): `delivered` = the socket took it.
    public typealias Observer = @Sendable (_ result: FrameResult, _ delivered: Bool) -> Void

    /// How long a PUSH send waits per attempt: the publisher shows it is alive between attempts.
    static let pushAttemptMs = 100

    public let options: Options
    private let pipeline: FramePipeline
    private let output: ResultOutput
    private let observer: Observer
    private let startedMono: UInt64
    private let lock = NSLock()
    private var flushDeadline: UInt64?
    private var lastProgress = monotonicNs()
    private var thread: ServiceThread?
    // Publisher thread only.
    private var nextSequence: UInt64 = 1
    private var congested = false

    /// `output` is handed over: from `start()` on only the publisher thread uses it.
    public init(pipeline: FramePipeline, output: ResultOutput, options: Options, startedMono: UInt64 = monotonicNs(),
                observer: @escaping Observer = { _, _ in }) {
        (self.pipeline, self.output, self.options, self.startedMono, self.observer) = (pipeline, output, options, startedMono, observer)
    }

    public func start() {
        let t = ServiceThread(name: "cfm-publisher") { [self] in run() }
        thread = t
        t.start()
    }

    /// Stop (after `pipeline.closeIntake()`): publishes every result left, giving up on
    /// sends still refused at the monotonic `deadline` (ns); then a last heartbeat, and
    /// the socket closes with what remains of the deadline as its linger.
    public func finish(flushUntil deadline: UInt64) {
        lock.lock(); flushDeadline = deadline; lock.unlock()
    }

    /// Waits for the publisher thread (nil deadline = forever). Returns whether it returned.
    @discardableResult
    public func join(until deadline: UInt64? = nil) -> Bool { thread?.join(until: deadline) ?? true }

    /// The publisher makes progress (or is waiting for a PUSH consumer, which is not a stall).
    public func isHealthy(stallTimeout: Double, now: UInt64 = monotonicNs()) -> Bool {
        lock.lock(); defer { lock.unlock() }
        let allowed = max(stallTimeout, 2) + Double(options.sendTimeoutMs) / 1000
        return Double(now &- lastProgress) / 1e9 < allowed
    }

    private func touch() { lock.lock(); lastProgress = monotonicNs(); lock.unlock() }

    private var deadline: UInt64? { lock.lock(); defer { lock.unlock() }; return flushDeadline }

    private func run() {
        let interval = UInt64(options.heartbeatIntervalS * 1e9)
        var nextHeartbeat = monotonicNs() + interval
        while true {
            touch()
            let wake = min(interval > 0 ? nextHeartbeat : .max, monotonicNs() + 500_000_000)
            guard let batch = pipeline.takeResults(waitUntil: wake) else { break }
            for finished in batch { publish(finished) }
            if interval > 0, monotonicNs() >= nextHeartbeat {
                sendHeartbeat()
                nextHeartbeat = monotonicNs() + interval
            }
        }
        if interval > 0 { sendHeartbeat() } // the final counts
        let left = deadline.map { $0 > monotonicNs() ? Int(($0 - monotonicNs()) / 1_000_000) : 0 } ?? 0
        output.close(lingerMs: left)
    }

    private func publish(_ finished: FramePipeline.Finished) {
        var r = finished.result
        r.sequence = nextSequence
        nextSequence += 1
        r.publishedNs = wallClockNs()
        r.latencyMs = Double(monotonicNs() &- finished.receivedMono) / 1e6
        let delivered = deliver(FrameCodec.encode(r, topicPrefix: options.topicPrefix, includeMap: options.includeMaps))
        pipeline.recordPublished(r, delivered: delivered)
        observer(r, delivered)
    }

    private func deliver(_ parts: [[UInt8]]) -> Bool {
        do {
            switch options.pattern {
            case .pub:
                congested = try !output.offer(parts, waitMs: congested ? 0 : options.sendTimeoutMs)
                return !congested
            case .push:
                while true {
                    if try output.offer(parts, waitMs: Self.pushAttemptMs) { return true }
                    touch()
                    if let deadline, monotonicNs() >= deadline { return false }
                }
            }
        } catch {
            return false
        }
    }

    /// Best effort: a heartbeat never waits for a full peer.
    private func sendHeartbeat() {
        let beat = Heartbeat(pipeline.snapshot, uptimeS: Double(monotonicNs() &- startedMono) / 1e9)
        if let parts = try? beat.encode(topicPrefix: options.topicPrefix) { _ = try? output.offer(parts, waitMs: 0) }
    }
}
