import Foundation

/// Counters and latency percentiles of a pipeline, as a snapshot.
public struct PipelineStats: Sendable, Equatable {
    public var received = 0, published = 0
    public var passed = 0, rejected = 0, errors = 0, dropped = 0
    /// Error results by code.
    public var errorCodes: [String: Int] = [:]
    public var queued = 0, inFlight = 0, maxQueued = 0
    /// Over the last results (receive → publish), milliseconds.
    public var p50Ms = 0.0, p99Ms = 0.0

    public init() {}
}

/// The bounded frame pipeline: the receive thread submits frames (or their decoding
/// errors); a bounded queue with an overflow policy feeds `workers` inference threads,
/// each with its own processing function (the detector is one-caller-at-a-time); one
/// publisher thread emits exactly one result per submitted frame, in submission order.
///
/// Memory is bounded: at most `queueDepth` queued frames, `workers` frames in inference
/// and `resultBacklog` finished results waiting for an earlier one (the receive thread
/// waits, never the workers).
public final class FramePipeline: @unchecked Sendable {
    public typealias Processor = @Sendable (Frame) throws -> Inference

    public struct Options: Sendable {
        public var queueDepth: Int
        public var overflow: OverflowPolicy
        public var workers: Int
        public var resultBacklog: Int

        public init(queueDepth: Int = 2, overflow: OverflowPolicy = .dropOldest, workers: Int = 1, resultBacklog: Int = 256) {
            (self.queueDepth, self.overflow, self.workers, self.resultBacklog) = (queueDepth, overflow, workers, max(resultBacklog, 1))
        }
    }

    private struct Job {
        var seq: UInt64
        var frame: Frame
        var receivedNs: Int64
        var receivedMono: UInt64
    }

    private struct Pending {
        var result: FrameResult
        var receivedMono: UInt64
    }

    public let options: Options
    private let publish: @Sendable (FrameResult) -> Void
    private let condition = NSCondition()
    private var processors: [Processor]
    private var queue: [Job] = []
    private var pending: [UInt64: Pending] = [:]
    private var nextSeq: UInt64 = 0
    private var nextToPublish: UInt64 = 0
    /// Per worker: the sequence number and monotonic start of the frame it is scoring.
    private var busy: [(seq: UInt64, since: UInt64, job: Job)?]
    /// Sequence numbers whose in-flight result was given up at a forced shutdown.
    private var abandoned: Set<UInt64> = []
    private var stopWorkers = false
    private var stopPublisher = false
    private var publisherHeartbeat = monotonicNs()
    private var threads: [Thread] = []
    private var stats = PipelineStats()
    private var latencies = [Double](repeating: 0, count: 2048)
    private var latencyCount = 0
    private var publishedAll = 0

    /// `processors`: one processing function per worker.
    public init(options: Options, processors: [Processor], publish: @escaping @Sendable (FrameResult) -> Void) {
        precondition(processors.count == options.workers && options.workers >= 1, "one processor per worker")
        (self.options, self.processors, self.publish) = (options, processors, publish)
        busy = Array(repeating: nil, count: options.workers)
    }

    /// Starts the worker and publisher threads.
    public func start() {
        for w in 0..<options.workers {
            let t = Thread { [self] in workerLoop(w) }
            t.name = "cfm-worker-\(w)"
            t.stackSize = 16 << 20
            threads.append(t)
        }
        let p = Thread { [self] in publisherLoop() }
        p.name = "cfm-publisher"
        threads.append(p)
        threads.forEach { $0.start() }
    }

    /// Swaps the processing functions (reload); frames already in inference finish with the old ones.
    public func replaceProcessors(_ new: [Processor]) {
        precondition(new.count == options.workers)
        condition.lock(); processors = new; condition.unlock()
    }

    // MARK: receive side (one thread)

    /// Submits a decoded frame received at `receivedNs` (wall) / `receivedMono`.
    public func submit(_ frame: Frame, receivedNs: Int64 = wallClockNs(), receivedMono: UInt64 = monotonicNs()) {
        condition.lock(); defer { condition.unlock() }
        let seq = nextSeq
        nextSeq += 1
        stats.received += 1
        let job = Job(seq: seq, frame: frame, receivedNs: receivedNs, receivedMono: receivedMono)
        if queue.count >= options.queueDepth {
            switch options.overflow {
            case .dropNewest:
                waitForBacklogRoom()
                insert(dropped(job, reason: "queue full (\(options.queueDepth)), newest frame shed"), seq: seq, mono: receivedMono)
                return
            case .dropOldest:
                let old = queue.removeFirst()
                waitForBacklogRoomKeepingOrder()
                insert(dropped(old, reason: "queue full (\(options.queueDepth)), oldest frame shed"), seq: old.seq, mono: old.receivedMono)
            case .block:
                while queue.count >= options.queueDepth && !stopWorkers { condition.wait() }
            }
        }
        queue.append(job)
        stats.maxQueued = max(stats.maxQueued, queue.count)
        condition.broadcast()
    }

    /// Submits a message that could not be decoded.
    public func submitInvalid(_ error: FrameError, receivedNs: Int64 = wallClockNs(), receivedMono: UInt64 = monotonicNs()) {
        condition.lock(); defer { condition.unlock() }
        let seq = nextSeq
        nextSeq += 1
        stats.received += 1
        waitForBacklogRoom()
        insert(FrameResult(frameId: error.frameId, verdict: .error, error: error, receivedNs: receivedNs), seq: seq, mono: receivedMono)
    }

    private func dropped(_ job: Job, reason: String) -> FrameResult {
        FrameResult(frameId: job.frame.frameId, verdict: .dropped, error: FrameError(.dropped, reason, frameId: job.frame.frameId),
                    receivedNs: job.receivedNs)
    }

    /// Called with the lock held.
    private func waitForBacklogRoom() {
        while pending.count >= options.resultBacklog && !stopPublisher { condition.wait() }
    }

    /// drop_oldest already removed a job: results may exceed the backlog by the queue depth, never more.
    private func waitForBacklogRoomKeepingOrder() {
        while pending.count >= options.resultBacklog + options.queueDepth && !stopPublisher { condition.wait() }
    }

    private func insert(_ result: FrameResult, seq: UInt64, mono: UInt64) {
        pending[seq] = Pending(result: result, receivedMono: mono)
        condition.broadcast()
    }

    // MARK: workers

    private func workerLoop(_ index: Int) {
        while true {
            condition.lock()
            while queue.isEmpty && !stopWorkers { condition.wait() }
            if queue.isEmpty && stopWorkers { condition.unlock(); return }
            let job = queue.removeFirst()
            let process = processors[index]
            busy[index] = (job.seq, monotonicNs(), job)
            condition.broadcast()
            condition.unlock()

            var result: FrameResult
            do {
                let inference = try process(job.frame)
                result = FrameResult(frameId: job.frame.frameId, verdict: inference.verdict, score: inference.score,
                                     threshold: inference.threshold, tier: inference.tier, model: inference.model,
                                     stagesMs: inference.stagesMs, foregroundPoints: inference.foregroundPoints,
                                     receivedNs: job.receivedNs, map: inference.map)
            } catch {
                result = FrameResult(frameId: job.frame.frameId, verdict: .error,
                                     error: FrameError.from(error, frameId: job.frame.frameId), receivedNs: job.receivedNs)
            }

            condition.lock()
            busy[index] = nil
            if abandoned.remove(job.seq) == nil { insert(result, seq: job.seq, mono: job.receivedMono) }
            condition.broadcast()
            condition.unlock()
        }
    }

    // MARK: publisher

    private func publisherLoop() {
        while true {
            condition.lock()
            publisherHeartbeat = monotonicNs()
            var ready: [Pending] = []
            while let p = pending.removeValue(forKey: nextToPublish) {
                ready.append(p)
                nextToPublish += 1
            }
            if ready.isEmpty {
                if stopPublisher { condition.unlock(); return }
                _ = condition.wait(until: Date(timeIntervalSinceNow: 0.5))
                condition.unlock()
                continue
            }
            condition.broadcast() // backlog room for the receive thread
            condition.unlock()

            for p in ready {
                var r = p.result
                r.publishedNs = wallClockNs()
                r.latencyMs = Double(monotonicNs() &- p.receivedMono) / 1e6
                publish(r)
                record(r)
            }
        }
    }

    private func record(_ r: FrameResult) {
        condition.lock(); defer { condition.unlock() }
        stats.published += 1
        switch r.verdict {
        case .pass: stats.passed += 1
        case .reject: stats.rejected += 1
        case .error: stats.errors += 1; stats.errorCodes[(r.error?.code ?? .internal).rawValue, default: 0] += 1
        case .dropped: stats.dropped += 1
        }
        if r.verdict == .pass || r.verdict == .reject {
            latencies[latencyCount % latencies.count] = r.latencyMs
            latencyCount += 1
        }
        condition.broadcast()
    }

    // MARK: observation and shutdown

    /// Counters, queue occupancy and latency percentiles now.
    public var snapshot: PipelineStats {
        condition.lock()
        var s = stats
        s.queued = queue.count
        s.inFlight = busy.compactMap { $0 }.count
        let window = Array(latencies.prefix(min(latencyCount, latencies.count)))
        condition.unlock()
        if !window.isEmpty {
            let sorted = window.sorted()
            s.p50Ms = percentile(sorted, 0.50)
            s.p99Ms = percentile(sorted, 0.99)
        }
        return s
    }

    /// The pipeline makes progress: no frame has been in inference longer than `stallTimeout`
    /// seconds and the publisher thread is alive.
    public func isHealthy(stallTimeout: Double, now: UInt64 = monotonicNs()) -> Bool {
        condition.lock(); defer { condition.unlock() }
        let limit = UInt64(stallTimeout * 1e9)
        if busy.contains(where: { $0.map { now &- $0.since > limit } ?? false }) { return false }
        return now &- publisherHeartbeat < max(limit, 2_000_000_000)
    }

    /// Every submitted frame has been published.
    public var isIdle: Bool {
        condition.lock(); defer { condition.unlock() }
        return queue.isEmpty && busy.allSatisfy { $0 == nil } && pending.isEmpty && nextToPublish == nextSeq
    }

    /// Stops after the receive side has stopped submitting: waits up to `timeout` seconds for
    /// queued and in-flight frames to be scored and published; on timeout, sheds what is left
    /// as `dropped` (queued) or gives up on it (in inference, also published as `dropped`).
    /// Returns whether everything finished in time. Joins the threads that could finish.
    @discardableResult
    public func drain(timeout: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        while !(queue.isEmpty && busy.allSatisfy { $0 == nil } && pending.isEmpty && nextToPublish == nextSeq) {
            if !condition.wait(until: deadline) { break }
        }
        let clean = queue.isEmpty && busy.allSatisfy { $0 == nil }
        if !clean {
            for job in queue { insert(dropped(job, reason: "shutdown: drain timeout"), seq: job.seq, mono: job.receivedMono) }
            queue.removeAll()
            for case let (seq, _, job)? in busy {
                abandoned.insert(seq)
                insert(dropped(job, reason: "shutdown: still in inference at the drain timeout"), seq: seq, mono: job.receivedMono)
            }
        }
        stopWorkers = true
        condition.broadcast()
        // Let the publisher flush everything that is now contiguous, then stop it.
        let flushDeadline = Date(timeIntervalSinceNow: 5)
        while !pending.isEmpty && nextToPublish < nextSeq {
            if !condition.wait(until: flushDeadline) { break }
        }
        stopPublisher = true
        condition.broadcast()
        condition.unlock()
        // Wait (bounded) for the publisher; workers still in inference are abandoned.
        let joinDeadline = Date(timeIntervalSinceNow: 2)
        while threads.last.map({ !$0.isFinished }) ?? false && Date() < joinDeadline { usleep(1000) }
        return clean
    }

    private func percentile(_ sorted: [Double], _ q: Double) -> Double {
        sorted[min(sorted.count - 1, Int((q * Double(sorted.count - 1)).rounded()))]
    }
}
