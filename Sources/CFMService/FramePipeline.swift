import CFMTensor
import Foundation

/// Counters and latency percentiles of a pipeline, as a snapshot.
public struct PipelineStats: Sendable, Equatable {
    public var received = 0
    /// Results handed to the output, one per received frame (once idle, received = published).
    public var published = 0
    /// Of those, results that did not reach the consumers: a PUB subscriber's full queue
    /// refused them (PUB sends to all subscribers or to none), or no PUSH consumer took
    /// them before the shutdown's flush deadline.
    public var undelivered = 0
    /// Verdicts of every result, delivered or not.
    public var passed = 0, rejected = 0, errors = 0, dropped = 0
    /// Error results by code.
    public var errorCodes: [String: Int] = [:]
    /// Frames waiting for preprocessing (the queue the overflow policy bounds), in the
    /// preprocessing stage (being preprocessed, or preprocessed and waiting for a worker), in
    /// inference; the most ever queued.
    public var queued = 0, preparing = 0, inFlight = 0, maxQueued = 0
    /// Sequence number of the last result handed to the output (results are numbered 1, 2, …; 0 = none yet).
    public var lastSequence: UInt64 = 0
    /// Over the last results (receive → publish), milliseconds.
    public var p50Ms = 0.0, p99Ms = 0.0

    public init() {}
}

/// The two stages a frame goes through after decoding, each function owned by one thread:
/// `prepare` on the preprocessing thread(s) (each owns its preprocessing buffers), `infer` on
/// the inference workers (each owns its detector, which serves one caller at a time). What
/// `prepare` returns is handed to `infer` with the frame; the pipeline does not look inside.
///
/// A `prepare` that edits the frame's pixels (`editsFrames`: background removal edits the
/// frame's cloud where it is — the received message's bytes or a pooled buffer — so no
/// full-resolution copy is made) is handed the only reference to them, and the pixels go back
/// to the pipeline's `frameBuffers` (a borrowed message part is freed) as soon as it returns:
/// `infer` receives the frame's id and size only (`rgb` and `cloud` empty) —
/// unless a recorder follows inference and needs the frame as received: then the pipeline
/// keeps its own reference, the edit copies the pixels first, and `infer` gets the frame
/// whole. A frame handed over cannot be preprocessed again, so after a reload it is scored by
/// the stages that preprocessed it.
public struct FrameStages: Sendable {
    /// One per preprocessing thread.
    let prepare: [@Sendable (inout Frame) throws -> any Sendable]
    /// One per inference worker.
    let infer: [@Sendable (Frame, any Sendable) throws -> Inference]
    /// The pipeline hands `prepare` the only reference to a frame's pixels (`prepare` edits
    /// them and `infer` needs only what it leaves).
    let handsFramesOver: Bool

    /// `editsFrames`: `prepare` edits the frame's pixels in place, and `infer` reads only the
    /// frame's id, `width` and `height`.
    public init<Prepared: Sendable>(prepare: [@Sendable (inout Frame) throws -> Prepared],
                                    infer: [@Sendable (Frame, Prepared) throws -> Inference], editsFrames: Bool = false) {
        precondition(!prepare.isEmpty && !infer.isEmpty, "at least one preprocessing thread and one worker")
        self.prepare = prepare.map { stage in { try stage(&$0) } }
        // The cast cannot fail: both lists come from this initialiser with the same `Prepared`.
        self.infer = infer.map { stage in { frame, prepared in try stage(frame, prepared as! Prepared) } }
        handsFramesOver = editsFrames
    }

    /// Scorers that take the frame whole, one per worker: the preprocessing stage only hands
    /// the frame on (fake scorers in tests, tools without a model).
    public init(scoring: [FramePipeline.Processor]) {
        let handOn: @Sendable (inout Frame) throws -> Frame = { $0 }
        self.init(prepare: [handOn], infer: scoring.map { score in { frame, _ in try score(frame) } })
    }

    private init(prepare: [@Sendable (inout Frame) throws -> any Sendable],
                 erasedInfer: [@Sendable (Frame, any Sendable) throws -> Inference], handsFramesOver: Bool) {
        (self.prepare, self.infer, self.handsFramesOver) = (prepare, erasedInfer, handsFramesOver)
    }

    /// The same stages, each inference followed by `then(frame, inference)` on its worker,
    /// with the frame as it was received.
    func followingInference(_ then: @escaping @Sendable (Frame, Inference) -> Void) -> FrameStages {
        FrameStages(prepare: prepare, erasedInfer: infer.map { stage in
            { frame, prepared in
                let inference = try stage(frame, prepared)
                then(frame, inference)
                return inference
            }
        }, handsFramesOver: false)
    }
}

/// The bounded frame pipeline between the receive thread and the publisher, in two stages
/// that overlap: a bounded queue with an overflow policy feeds the preprocessing thread(s)
/// (`cfm-prepare-i`), which hand each preprocessed frame to the `workers` inference threads
/// (`cfm-worker-i`) through a hand-off of at most one frame per worker (counting the frames
/// being preprocessed); so frame N+1 is preprocessed while frame N is in inference.
/// Finished results wait in an ordered backlog until the publisher takes them, exactly one
/// per submitted frame, in submission order.
///
/// Memory is bounded: at most `queueDepth` queued frames, `workers` frames in the
/// preprocessing stage (being preprocessed, or preprocessed and waiting for a worker),
/// `workers` frames in inference and `resultBacklog`
/// (+ `queueDepth` under drop_oldest) finished results waiting for an earlier one or for the
/// publisher (the receive thread waits, never the stages).
///
/// Lifecycle (the supervisor's order): `start()` the stage threads; the receive side
/// submits; at stop `drain(until:)` finishes or sheds every received frame, `closeIntake()`
/// once the receive side has returned, `stopWorkers(joinUntil:)`; the publisher takes
/// results until `takeResults` returns nil.
public final class FramePipeline: @unchecked Sendable {
    /// A scorer that takes a decoded frame whole (see `FrameStages(scoring:)`).
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

    /// A finished result in submission order, with the monotonic time its frame arrived (for the latency).
    public struct Finished: Sendable {
        public var result: FrameResult
        public var receivedMono: UInt64
    }

    private struct Job {
        var seq: UInt64
        var frame: Frame
        var receivedNs: Int64
        var receivedMono: UInt64
    }

    /// A job through the preprocessing stage, with what its `prepare` returned and the stages
    /// that preprocessed it (the current ones, or replaced ones for a frame handed over).
    private struct PreparedJob {
        var job: Job
        var prepared: any Sendable
        var stages: FrameStages
    }

    public let options: Options
    /// Where the receive side decodes frames (`FrameCodec.decode(_:limits:buffers:)`): a frame
    /// handed over to its preprocessing (`FrameStages.handsFramesOver`) gives its buffers back
    /// here (and lets go of the message parts it borrowed) as soon as it is preprocessed. (A
    /// frame kept whole may still be shared with a recorder: its pixels are freed when the
    /// last holder is done, not recycled.)
    public let frameBuffers = FrameBufferPool()
    private let condition = NSCondition()
    private var stages: FrameStages
    /// Counts `replaceStages` calls: a frame is inferred by the stages that preprocessed it.
    private var generation = 0
    private var queue: [Job] = []
    /// Preprocessed frames waiting for a worker (at most `workers`).
    private var handOff: [PreparedJob] = []
    private var pending: [UInt64: Finished] = [:]
    private var nextSeq: UInt64 = 0
    private var nextToTake: UInt64 = 0
    /// Per preprocessing thread: the frame it is preprocessing and the monotonic time it started.
    private var preparing: [(since: UInt64, job: Job)?]
    /// Per worker: the frame it is scoring and the monotonic time it started.
    private var busy: [(since: UInt64, job: Job)?]
    /// Sequence numbers whose preprocessing or inference was given up at a forced shutdown.
    private var abandoned: Set<UInt64> = []
    /// Why unresolved frames are shed (set by `drain` at its deadline): every later submission is answered `dropped` at once.
    private var shedReason: String?
    private var intakeClosed = false
    private var workersStopping = false
    /// The receive side is waiting inside `submit` (queue or backlog full): its liveness is the pipeline's.
    private var intakeWaiting = false
    private var stageThreads: [ServiceThread] = []
    private var stats = PipelineStats()
    private var latencies = [Double](repeating: 0, count: 2048)
    private var latencyCount = 0

    /// `stages`: one `infer` per worker (`options.workers`), one `prepare` per preprocessing thread.
    public init(options: Options, stages: FrameStages) {
        precondition(stages.infer.count == options.workers && options.workers >= 1, "one inference function per worker")
        (self.options, self.stages) = (options, stages)
        preparing = Array(repeating: nil, count: stages.prepare.count)
        busy = Array(repeating: nil, count: options.workers)
    }

    /// Scorers that take the frame whole, one per worker (`FrameStages(scoring:)`).
    public convenience init(options: Options, processors: [Processor]) {
        self.init(options: options, stages: FrameStages(scoring: processors))
    }

    /// Starts the preprocessing threads and the workers.
    public func start() {
        // A stage thread captures the pipeline (and through it the stage functions): one given
        // up at the drain timeout keeps everything it touches alive until it returns.
        for i in 0..<preparing.count {
            stageThreads.append(ServiceThread(name: "cfm-prepare-\(i)", stackSize: 16 << 20) { [self] in prepareLoop(i) })
        }
        for w in 0..<options.workers {
            stageThreads.append(ServiceThread(name: "cfm-worker-\(w)", stackSize: 16 << 20) { [self] in workerLoop(w) })
        }
        for t in stageThreads { t.start() }
    }

    /// Swaps the stage functions (reload). Frames already in inference finish with the old
    /// ones; frames preprocessed (or being preprocessed) by the old ones are preprocessed
    /// again by the new ones — or, when the old ones edited them (`FrameStages.handsFramesOver`),
    /// scored by the old ones — so every frame is preprocessed and scored with one config.
    public func replaceStages(_ new: FrameStages) {
        precondition(new.infer.count == options.workers && new.prepare.count == preparing.count)
        condition.lock(); defer { condition.unlock() }
        stages = new
        generation += 1
        // Frames handed over were edited by their preprocessing: the stages that preprocessed them score them.
        for item in handOff where !item.stages.handsFramesOver { requeue(item.job) }
        handOff.removeAll { !$0.stages.handsFramesOver }
        condition.broadcast()
    }

    // MARK: receive side (one thread)

    /// Submits a decoded frame received at `receivedNs` (wall) / `receivedMono`.
    /// The frame is consumed: the queue holds its only reference, so a frame borrowing the
    /// received message's bytes is edited there by preprocessing, not first copied.
    public func submit(_ frame: consuming Frame, receivedNs: Int64 = wallClockNs(), receivedMono: UInt64 = monotonicNs()) {
        condition.lock(); defer { condition.unlock() }
        let job = Job(seq: nextSeq, frame: frame, receivedNs: receivedNs, receivedMono: receivedMono)
        nextSeq += 1
        stats.received += 1
        if let shedReason { return insert(dropped(job, reason: shedReason)) }
        if queue.count >= options.queueDepth {
            switch options.overflow {
            case .dropNewest:
                waitForBacklogRoom(extra: 0)
                return insert(dropped(job, reason: "queue full (\(options.queueDepth)), newest frame shed"))
            case .dropOldest:
                let old = queue.removeFirst()
                // The shed frame's result keeps its place: results may exceed the backlog by the queue depth, never more.
                waitForBacklogRoom(extra: options.queueDepth)
                insert(dropped(old, reason: "queue full (\(options.queueDepth)), oldest frame shed"))
            case .block:
                intakeWaiting = true
                while queue.count >= options.queueDepth && shedReason == nil { condition.wait() }
                intakeWaiting = false
                if let shedReason { return insert(dropped(job, reason: shedReason)) }
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
        waitForBacklogRoom(extra: 0)
        pending[seq] = Finished(result: FrameResult(frameId: error.frameId, verdict: .error, error: error, receivedNs: receivedNs),
                                receivedMono: receivedMono)
        condition.broadcast()
    }

    private func dropped(_ job: Job, reason: String) -> (seq: UInt64, Finished) {
        (job.seq, Finished(result: FrameResult(frameId: job.frame.frameId, verdict: .dropped,
                                               error: FrameError(.dropped, reason, frameId: job.frame.frameId),
                                               receivedNs: job.receivedNs),
                           receivedMono: job.receivedMono))
    }

    /// Called with the lock held: waits while the backlog is full (the publisher is behind),
    /// unless frames are being shed at shutdown.
    private func waitForBacklogRoom(extra: Int) {
        intakeWaiting = true
        while pending.count >= options.resultBacklog + extra && shedReason == nil { condition.wait() }
        intakeWaiting = false
    }

    /// Called with the lock held.
    private func insert(_ entry: (seq: UInt64, Finished)) {
        pending[entry.seq] = entry.1
        condition.broadcast()
    }

    /// Called with the lock held: puts a job taken from the queue back in its place (by sequence number).
    private func requeue(_ job: Job) {
        queue.insert(job, at: queue.firstIndex { $0.seq > job.seq } ?? queue.endIndex)
    }

    /// Called with the lock held: an error result for a job whose stage threw.
    private func failed(_ job: Job, _ error: Error) -> (seq: UInt64, Finished) {
        (job.seq, Finished(result: FrameResult(frameId: job.frame.frameId, verdict: .error,
                                               error: FrameError.from(error, frameId: job.frame.frameId), receivedNs: job.receivedNs),
                           receivedMono: job.receivedMono))
    }

    // MARK: preprocessing threads

    private func prepareLoop(_ index: Int) {
        while true {
            condition.lock()
            // Take a frame only when the hand-off has room for it: a preprocessed frame waits there for a worker.
            while (queue.isEmpty || handOffIsFull) && !workersStopping { condition.wait() }
            if queue.isEmpty || handOffIsFull { condition.unlock(); return } // stopping, nothing left to do
            var job = queue.removeFirst()
            let current = stages, taken = generation, prepare = current.prepare[index]
            // Handed over, the stage gets the only reference to the frame's pixels (it edits them
            // in place) and the job keeps the frame's id and size meanwhile.
            var frame = job.frame
            if current.handsFramesOver { (job.frame.rgb, job.frame.cloud) = (FramePixels(), FramePixels()) }
            preparing[index] = (monotonicNs(), job)
            condition.broadcast() // queue room for the receive side
            condition.unlock()

            let outcome = Result { try prepare(&frame) }
            // Handed over, the frame's pixels are done with: the next frame is decoded into its
            // buffers, and a received message part it borrowed is freed.
            if current.handsFramesOver { frameBuffers.recycle(&frame) }

            condition.lock()
            preparing[index] = nil
            if abandoned.remove(job.seq) == nil {
                switch outcome {
                case .success(let prepared) where taken == generation || current.handsFramesOver:
                    if current.handsFramesOver { job.frame = frame }
                    handOff.append(PreparedJob(job: job, prepared: prepared, stages: current))
                case .success:
                    requeue(job) // the stages were replaced meanwhile: preprocess it again with the new ones
                case .failure(let error):
                    insert(failed(job, error))
                }
            }
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Called with the lock held: every worker has a preprocessed frame waiting or being
    /// preprocessed for it, so preprocessing another would only make it wait longer.
    private var handOffIsFull: Bool { handOff.count + preparing.lazy.filter { $0 != nil }.count >= options.workers }

    // MARK: workers

    private func workerLoop(_ index: Int) {
        while true {
            condition.lock()
            while handOff.isEmpty && !workersStopping { condition.wait() }
            if handOff.isEmpty { condition.unlock(); return }
            let item = handOff.removeFirst()
            let job = item.job, infer = item.stages.infer[index]
            busy[index] = (monotonicNs(), job)
            condition.broadcast() // hand-off room for the preprocessing threads
            condition.unlock()

            var result: FrameResult
            do {
                let inference = try infer(job.frame, item.prepared)
                result = FrameResult(frameId: job.frame.frameId, verdict: inference.verdict, score: inference.score,
                                     threshold: inference.threshold, tier: inference.tier, model: inference.model,
                                     stagesMs: inference.stagesMs, foregroundPoints: inference.foregroundPoints,
                                     receivedNs: job.receivedNs, map: inference.map,
                                     regions: inference.regions?.regions, regionsTotal: inference.regions?.total)
            } catch {
                result = failed(job, error).1.result
            }

            condition.lock()
            busy[index] = nil
            if abandoned.remove(job.seq) == nil { insert((job.seq, Finished(result: result, receivedMono: job.receivedMono))) }
            condition.broadcast()
            condition.unlock()
        }
    }

    // MARK: output side (the publisher thread)

    /// The next finished results in submission order, removed from the backlog; waits until
    /// the monotonic `deadline` (ns) for one (an empty array when none came). Nil once the
    /// intake is closed and every result has been taken: the publisher is done.
    public func takeResults(waitUntil deadline: UInt64) -> [Finished]? {
        condition.lock(); defer { condition.unlock() }
        while true {
            var ready: [Finished] = []
            while let p = pending.removeValue(forKey: nextToTake) {
                ready.append(p)
                nextToTake += 1
            }
            if !ready.isEmpty {
                condition.broadcast() // backlog room for the receive thread
                return ready
            }
            if intakeClosed && nextToTake == nextSeq { return nil }
            let now = monotonicNs()
            if now >= deadline { return [] }
            _ = condition.wait(until: Date(timeIntervalSinceNow: Double(deadline - now) / 1e9))
        }
    }

    /// Counts a result the publisher is done with: `delivered` = it reached every consumer.
    public func recordPublished(_ r: FrameResult, delivered: Bool) {
        condition.lock(); defer { condition.unlock() }
        stats.published += 1
        if !delivered { stats.undelivered += 1 }
        stats.lastSequence = max(stats.lastSequence, r.sequence ?? 0)
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

    // MARK: observation

    /// Counters, queue occupancy and latency percentiles now.
    public var snapshot: PipelineStats {
        condition.lock()
        var s = stats
        s.queued = queue.count
        s.preparing = preparing.compactMap { $0 }.count + handOff.count
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

    /// The stages make progress: no frame has been in preprocessing or in inference longer
    /// than `stallTimeout` seconds.
    public func isHealthy(stallTimeout: Double, now: UInt64 = monotonicNs()) -> Bool {
        condition.lock(); defer { condition.unlock() }
        let limit = UInt64(stallTimeout * 1e9)
        return !busy.contains { $0.map { now &- $0.since > limit } ?? false }
            && !preparing.contains { $0.map { now &- $0.since > limit } ?? false }
    }

    /// The receive side is waiting inside `submit` for room (queue under `block`, or the
    /// result backlog behind a slow output): it is not stalled, the pipeline holds it.
    public var isIntakeWaiting: Bool { condition.lock(); defer { condition.unlock() }; return intakeWaiting }

    /// Every submitted frame has its result (none queued, in preprocessing or in inference); the publisher may still be sending some.
    public var isResolved: Bool { condition.lock(); defer { condition.unlock() }; return resolved }

    private var resolved: Bool {
        queue.isEmpty && handOff.isEmpty && preparing.allSatisfy { $0 == nil } && busy.allSatisfy { $0 == nil } && !intakeWaiting
    }

    // MARK: shutdown

    /// Stop, step 1 (after the receive side was told to stop): waits until the monotonic
    /// `deadline` (ns) for the queued, preprocessing and in-flight frames to be scored. At
    /// the deadline everything unresolved becomes a `dropped` result: queued and preprocessed
    /// frames, a frame the receive side is waiting to queue, frames still in preprocessing
    /// or in inference (their threads are given up: their late results are discarded), and
    /// every later submission. Returns whether everything was scored in time.
    @discardableResult
    public func drain(until deadline: UInt64) -> Bool {
        condition.lock(); defer { condition.unlock() }
        while !resolved {
            let now = monotonicNs()
            if now >= deadline { break }
            _ = condition.wait(until: Date(timeIntervalSinceNow: min(Double(deadline - now) / 1e9, 0.05)))
        }
        if resolved { return true }
        shedReason = "shutdown: drain timeout"
        for job in handOff.map(\.job) + queue { insert(dropped(job, reason: "shutdown: drain timeout")) }
        queue.removeAll()
        handOff.removeAll()
        for case let (_, job)? in preparing {
            abandoned.insert(job.seq)
            insert(dropped(job, reason: "shutdown: still in preprocessing at the drain timeout"))
        }
        for case let (_, job)? in busy {
            abandoned.insert(job.seq)
            insert(dropped(job, reason: "shutdown: still in inference at the drain timeout"))
        }
        condition.broadcast()
        return false
    }

    /// Stop, step 2 (the receive side has returned): no more submissions. `takeResults`
    /// returns nil once every result has been taken.
    public func closeIntake() {
        condition.lock(); intakeClosed = true; condition.broadcast(); condition.unlock()
    }

    /// Stop, step 3: idle preprocessing threads and workers return; joins them until the
    /// monotonic `deadline`. Returns how many are still inside a stage function (given up at
    /// the drain timeout): the process must not tear down what they use while they run.
    public func stopWorkers(joinUntil deadline: UInt64) -> Int {
        condition.lock(); workersStopping = true; condition.broadcast(); condition.unlock()
        return stageThreads.filter { !$0.join(until: deadline) }.count
    }

    private func percentile(_ sorted: [Double], _ q: Double) -> Double {
        sorted[min(sorted.count - 1, Int((q * Double(sorted.count - 1)).rounded()))]
    }
}
