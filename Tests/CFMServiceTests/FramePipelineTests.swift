@testable import CFMService
import CFMDetector
import Foundation
import XCTest

/// The publisher's output in memory: every message it takes, decoded (results with their
/// `seq`, heartbeats apart). Refuses nothing: socket behaviour is tested over real ZeroMQ.
final class MemoryOutput: ResultOutput, @unchecked Sendable {
    private let lock = NSLock()
    private var items: [FrameResult] = []
    private var beats: [Heartbeat] = []
    private(set) var closed = false

    func offer(_ parts: [[UInt8]], waitMs: Int) throws -> Bool {
        lock.lock(); defer { lock.unlock() }
        if let beat = Heartbeat.decode(parts) { beats.append(beat); return true }
        var r = try FrameCodec.decodeResult(parts)
        r.sequence = resultSequence(parts)
        items.append(r)
        return true
    }

    func close(lingerMs: Int) { lock.lock(); closed = true; lock.unlock() }
    var results: [FrameResult] { lock.lock(); defer { lock.unlock() }; return items }
    var heartbeats: [Heartbeat] { lock.lock(); defer { lock.unlock() }; return beats }
}

/// A pipeline and its publisher writing into memory, stopped like the daemon stops them.
final class PipelineHarness {
    let pipeline: FramePipeline
    let publisher: ResultPublisher
    let output = MemoryOutput()

    convenience init(_ options: FramePipeline.Options, _ processors: [FramePipeline.Processor], heartbeatIntervalS: Double = 0) {
        self.init(pipeline: FramePipeline(options: options, processors: processors), heartbeatIntervalS: heartbeatIntervalS)
    }

    init(pipeline: FramePipeline, heartbeatIntervalS: Double = 0) {
        self.pipeline = pipeline
        publisher = ResultPublisher(pipeline: pipeline, output: output, options: .init(heartbeatIntervalS: heartbeatIntervalS))
        publisher.start()
        pipeline.start()
    }

    /// The daemon's stop sequence once the receive side is done: drain (or shed at the
    /// timeout), close the intake, stop the workers, flush. Returns whether it drained.
    @discardableResult
    func stop(drainTimeout: Double) -> (drained: Bool, abandoned: Int) {
        let drained = pipeline.drain(until: monotonicNs() + UInt64(drainTimeout * 1e9))
        pipeline.closeIntake()
        let abandoned = pipeline.stopWorkers(joinUntil: monotonicNs() + 200_000_000)
        publisher.finish(flushUntil: monotonicNs() + 1_000_000_000)
        XCTAssertTrue(publisher.join(until: monotonicNs() + 5_000_000_000), "the publisher returns")
        return (drained, abandoned)
    }

    var results: [FrameResult] { output.results }
}

/// The "seq" of a result message (decodeResult leaves it out).
func resultSequence(_ parts: [[UInt8]]) -> UInt64? {
    guard parts.count >= 2, let json = try? JSONSerialization.jsonObject(with: Data(parts[1])) as? [String: Any] else { return nil }
    return (json["seq"] as? NSNumber)?.uint64Value
}

/// A fake scorer: sleeps, then scores the frame by the number in its id.
func slowScorer(_ seconds: Double, gate: NSCondition? = nil) -> FramePipeline.Processor {
    { frame in
        if seconds > 0 { usleep(UInt32(seconds * 1e6)) }
        if frame.frameId.hasPrefix("fail") { throw DetectorError.tooFewPoints(found: 1, needed: 128) }
        let n = Float(frame.frameId.split(separator: "-").last.flatMap { Int($0) } ?? 0)
        return Inference(score: n.truncatingRemainder(dividingBy: 2) == 0 ? 1 : 3, threshold: 2, tier: "small", model: "fake",
                         stagesMs: [("fake", seconds * 1000)], foregroundPoints: 10)
    }
}

final class FramePipelineTests: XCTestCase {
    private let template = makeFrame(id: "", width: 4, height: 4)

    private func frame(_ id: String) -> Frame {
        var f = template
        f.frameId = id
        return f
    }

    func testEveryFrameGetsOneResultInOrder() {
        let h = PipelineHarness(.init(queueDepth: 4, overflow: .block), [slowScorer(0)])
        let p = h.pipeline
        for i in 0..<50 {
            if i % 7 == 3 { p.submitInvalid(FrameError(.badSize, "x", frameId: "f-\(i)")) } else { p.submit(frame("f-\(i)")) }
        }
        XCTAssertTrue(h.stop(drainTimeout: 5).drained)
        let r = h.results
        XCTAssertEqual(r.map(\.frameId), (0..<50).map { "f-\($0)" })
        XCTAssertEqual(r.map(\.sequence), (1...50).map { UInt64($0) }, "consecutive publication numbers")
        XCTAssertTrue(h.output.closed, "the publisher closes its output when it ends")
        for (i, result) in r.enumerated() {
            if i % 7 == 3 {
                XCTAssertEqual(result.verdict, .error)
                XCTAssertEqual(result.error?.code, .badSize)
            } else {
                XCTAssertEqual(result.verdict, i % 2 == 0 ? .pass : .reject)
                XCTAssertEqual(result.threshold, 2)
                XCTAssertNil(result.error)
            }
            XCTAssertGreaterThanOrEqual(result.publishedNs, result.receivedNs)
        }
        let s = p.snapshot
        XCTAssertEqual(s.received, 50)
        XCTAssertEqual(s.published, 50)
        XCTAssertEqual(s.undelivered, 0)
        XCTAssertEqual(s.lastSequence, 50)
        XCTAssertEqual(s.errors, 7)
        XCTAssertEqual(s.passed + s.rejected, 43)
        XCTAssertEqual(s.errorCodes, ["bad_size": 7])
    }

    func testProcessorErrorsBecomeErrorResults() {
        let h = PipelineHarness(.init(), [slowScorer(0)])
        h.pipeline.submit(frame("fail-1"))
        h.pipeline.submit(frame("ok-2"))
        XCTAssertTrue(h.stop(drainTimeout: 5).drained)
        XCTAssertEqual(h.results.map(\.verdict), [.error, .pass])
        XCTAssertEqual(h.results.first?.error?.code, .tooFewPoints)
        XCTAssertEqual(h.results.first?.frameId, "fail-1")
    }

    /// Overload: 60 frames at once against a 10 ms scorer. Every frame gets exactly one
    /// result, in submission order; the queue never exceeds its depth.
    func testOverloadDropOldest() { overload(.dropOldest) }
    func testOverloadDropNewest() { overload(.dropNewest) }
    func testOverloadBlock() { overload(.block) }

    private func overload(_ policy: OverflowPolicy) {
        let h = PipelineHarness(.init(queueDepth: 3, overflow: policy), [slowScorer(0.01)])
        let p = h.pipeline
        for i in 0..<60 { p.submit(frame("f-\(i)")) }
        XCTAssertTrue(h.stop(drainTimeout: 10).drained)
        let r = h.results
        XCTAssertEqual(r.map(\.frameId), (0..<60).map { "f-\($0)" }, "\(policy)")
        let dropped = r.filter { $0.verdict == .dropped }
        let s = p.snapshot
        XCTAssertLessThanOrEqual(s.maxQueued, 3)
        XCTAssertEqual(s.dropped, dropped.count)
        XCTAssertEqual(s.published, 60)
        switch policy {
        case .block:
            XCTAssertEqual(dropped.count, 0)
        case .dropOldest:
            XCTAssertGreaterThan(dropped.count, 40)
            XCTAssertNotEqual(r.last?.verdict, .dropped, "the newest frame is kept")
        case .dropNewest:
            XCTAssertGreaterThan(dropped.count, 40)
            XCTAssertNotEqual(r.first?.verdict, .dropped, "the first frame is kept")
        }
        XCTAssertTrue(dropped.allSatisfy { $0.error?.code == .dropped })
    }

    func testSeveralWorkersKeepReceiveOrder() {
        // Alternating slow and fast workers: results finish out of order, publish in order.
        let h = PipelineHarness(.init(queueDepth: 8, overflow: .block, workers: 3),
                                [slowScorer(0.02), slowScorer(0.001), slowScorer(0.007)])
        for i in 0..<40 { h.pipeline.submit(frame("f-\(i)")) }
        XCTAssertTrue(h.stop(drainTimeout: 10).drained)
        XCTAssertEqual(h.results.map(\.frameId), (0..<40).map { "f-\($0)" })
    }

    func testStallIsVisibleAndDrainTimeoutShedsTheRest() {
        let h = PipelineHarness(.init(queueDepth: 4, overflow: .block), [slowScorer(1.0)])
        let p = h.pipeline
        for i in 0..<3 { p.submit(frame("f-\(i)")) }
        XCTAssertTrue(waitUntil(2) { p.snapshot.inFlight == 1 })
        usleep(300_000)
        XCTAssertFalse(p.isHealthy(stallTimeout: 0.2), "a frame stuck in inference is a stall")
        XCTAssertTrue(p.isHealthy(stallTimeout: 5))
        let stop = h.stop(drainTimeout: 0.1)
        XCTAssertFalse(stop.drained)
        XCTAssertEqual(stop.abandoned, 1, "the worker in inference is given up, not joined")
        let r = h.results
        XCTAssertEqual(r.map(\.frameId), ["f-0", "f-1", "f-2"])
        XCTAssertEqual(r.map(\.verdict), [.dropped, .dropped, .dropped])
        XCTAssertEqual(r.first?.error?.message, "shutdown: still in inference at the drain timeout")
        usleep(1_000_000) // the abandoned worker finishes; its late result must not be published
        XCTAssertEqual(h.results.count, 3)
        XCTAssertEqual(p.snapshot.published, 3)
    }

    /// overflow block: a frame the receive side is waiting to queue when the drain timeout
    /// expires is answered (dropped) and the receive side is released, never lost.
    func testFrameWaitingToBeQueuedIsAnsweredAtTheDrainTimeout() {
        let h = PipelineHarness(.init(queueDepth: 1, overflow: .block), [slowScorer(0.5)])
        let p = h.pipeline
        // f-0 in inference, f-1 preprocessed (waiting for the worker), f-2 queued, f-3 waiting for room.
        let frames = (0..<4).map { frame("f-\($0)") }
        let receiver = Thread { for f in frames { p.submit(f) } }
        receiver.start()
        XCTAssertTrue(waitUntil(2) { p.isIntakeWaiting && p.snapshot.received == 4 }, "f-3 waits for queue room")
        let s = p.snapshot
        XCTAssertEqual([s.queued, s.preparing, s.inFlight], [1, 1, 1])
        let stop = h.stop(drainTimeout: 0.05)
        XCTAssertFalse(stop.drained)
        XCTAssertTrue(waitUntil(2) { receiver.isFinished }, "the waiting submit returned")
        XCTAssertEqual(h.results.map(\.frameId), ["f-0", "f-1", "f-2", "f-3"])
        XCTAssertEqual(h.results.map(\.verdict), [.dropped, .dropped, .dropped, .dropped])
        XCTAssertEqual(h.results.map { $0.error?.message ?? "" },
                       ["shutdown: still in inference at the drain timeout", "shutdown: drain timeout", "shutdown: drain timeout",
                        "shutdown: drain timeout"])
    }

    /// Two stages: stages tagged `name` whose inference waits for `gate` (when given) and
    /// reports which preprocessing and which inference scored the frame (`model` = "prep/infer").
    private func taggedStages(_ name: String, gate: DispatchSemaphore? = nil, prepared: Calls? = nil) -> FrameStages {
        FrameStages(
            prepare: [{ @Sendable frame in
                if frame.frameId.hasPrefix("fail") { throw DetectorError.tooFewPoints(found: 1, needed: 128) }
                if frame.frameId.hasPrefix("slow") { usleep(1_000_000) }
                prepared?.add(ServiceConfig())
                return "\(name)-prep"
            }],
            infer: [{ @Sendable frame, prep in
                gate?.wait()
                return Inference(score: 1, threshold: 2, tier: "tiny", model: "\(prep)/\(name)-infer")
            }])
    }

    /// Frame N+1 is preprocessed while frame N is in inference, and waits for the worker there.
    func testNextFrameIsPreprocessedDuringInference() {
        let gate = DispatchSemaphore(value: 0), prepared = Calls()
        let p = FramePipeline(options: .init(queueDepth: 4, overflow: .block), stages: taggedStages("a", gate: gate, prepared: prepared))
        let h = PipelineHarness(pipeline: p)
        for i in 0..<3 { p.submit(frame("f-\(i)")) }
        XCTAssertTrue(waitUntil(2) { prepared.count == 2 }, "f-1 preprocessed while f-0 is in inference")
        usleep(100_000)
        XCTAssertEqual(prepared.count, 2, "no further frame is preprocessed while one waits for the only worker")
        let s = p.snapshot
        XCTAssertEqual([s.queued, s.preparing, s.inFlight], [1, 1, 1])
        for _ in 0..<3 { gate.signal() }
        XCTAssertTrue(h.stop(drainTimeout: 5).drained)
        XCTAssertEqual(h.results.map(\.frameId), ["f-0", "f-1", "f-2"])
        XCTAssertEqual(h.results.map(\.model), Array(repeating: "a-prep/a-infer", count: 3))
    }

    /// A preprocessing error is the frame's result, in its place; a frame still in
    /// preprocessing at the drain timeout is answered `dropped` and its late result discarded.
    func testPreprocessingErrorsAndDrainTimeout() {
        let h = PipelineHarness(pipeline: FramePipeline(options: .init(queueDepth: 4, overflow: .block), stages: taggedStages("a")))
        let p = h.pipeline
        for id in ["ok-0", "fail-1", "ok-2", "slow-3", "ok-4"] { p.submit(frame(id)) }
        XCTAssertTrue(waitUntil(2) { p.snapshot.published == 3 })
        XCTAssertFalse(p.isHealthy(stallTimeout: 0.5, now: monotonicNs() + 600_000_000), "a frame stuck in preprocessing is a stall")
        let stop = h.stop(drainTimeout: 0.1)
        XCTAssertFalse(stop.drained)
        XCTAssertEqual(stop.abandoned, 1, "the preprocessing thread is given up, not joined")
        XCTAssertEqual(h.results.map(\.frameId), ["ok-0", "fail-1", "ok-2", "slow-3", "ok-4"])
        XCTAssertEqual(h.results.map(\.verdict), [.pass, .error, .pass, .dropped, .dropped])
        XCTAssertEqual(h.results[1].error?.code, .tooFewPoints)
        XCTAssertEqual(h.results[3].error?.message, "shutdown: still in preprocessing at the drain timeout")
        XCTAssertEqual(h.results[4].error?.message, "shutdown: drain timeout")
        usleep(1_200_000) // the abandoned preprocessing finishes; its frame must not be published again
        XCTAssertEqual(p.snapshot.published, 5)
    }

    /// Reload: the frame in inference finishes with the old stages; the frame the old
    /// preprocessing prepared is preprocessed again by the new one and scored by the new inference.
    func testReplacedStagesPreprocessAgain() {
        let gate = DispatchSemaphore(value: 0), prepared = Calls()
        let p = FramePipeline(options: .init(queueDepth: 4, overflow: .block), stages: taggedStages("old", gate: gate, prepared: prepared))
        let h = PipelineHarness(pipeline: p)
        p.submit(frame("f-0"))
        p.submit(frame("f-1"))
        XCTAssertTrue(waitUntil(2) { prepared.count == 2 && p.snapshot.inFlight == 1 })
        p.replaceStages(taggedStages("new"))
        gate.signal()
        XCTAssertTrue(h.stop(drainTimeout: 5).drained)
        XCTAssertEqual(h.results.map(\.model), ["old-prep/old-infer", "new-prep/new-infer"])
    }

    /// Stages whose preprocessing edits the frame's cloud (sets its first value to 42): it
    /// reports whether the edit was in place (the storage the frame was submitted with), the
    /// inference what it saw: the frame's size and first XYZ value.
    private func editingStages(gate: DispatchSemaphore, submitted: Addresses, tag: String = "") -> FrameStages {
        FrameStages(
            prepare: [{ @Sendable frame in
                gate.wait()
                frame.cloud[0] = 42
                let inPlace = frame.cloud.withUnsafeBufferPointer { submitted.contains(frame.frameId, $0.baseAddress) }
                return inPlace ? "in place" : "copied"
            }],
            infer: [{ @Sendable frame, prep in
                Inference(score: 1, threshold: 2, tier: "tiny",
                          model: "\(tag)\(prep)/\(frame.width)×\(frame.height)/\(frame.cloud.first.map { "\($0)" } ?? "no pixels")")
            }],
            editsFrames: true)
    }

    /// The frame's storage as submitted, by frame id.
    final class Addresses: @unchecked Sendable {
        private let lock = NSLock()
        private var addresses: [String: UnsafePointer<Float>] = [:]
        func contains(_ id: String, _ address: UnsafePointer<Float>?) -> Bool { lock.lock(); defer { lock.unlock() }; return addresses[id] == address }
        /// Submits a fresh frame (its storage referenced by the pipeline only): its own arrays,
        /// or `received`, the received message's parts it was decoded in.
        func submit(_ id: String, to p: FramePipeline, received: Bool = false) {
            let made = makeFrame(id: id, width: 4, height: 4)
            let f = received ? try! FrameCodec.decode(ReceivedMessage(copying: FrameCodec.encode(made))) : made
            XCTAssertEqual(f.cloud.isBorrowed, received)
            lock.lock(); addresses[id] = f.cloud.withUnsafeBufferPointer { $0.baseAddress }; lock.unlock()
            p.submit(f)
        }
    }

    /// Preprocessing that edits frames gets the only reference to their pixels (the edit is in
    /// place: in the frame's arrays, or in the received message's bytes it borrows) and inference
    /// the frame's id and size, its pixels recycled for the next decode — unless a recorder
    /// follows inference: then the edit copies and inference gets the frame as received.
    func testEditingPreprocessingGetsTheFrameItself() {
        for recorded in [false, true] {
            for received in [false, true] {
                let gate = DispatchSemaphore(value: 0), submitted = Addresses()
                var stages = editingStages(gate: gate, submitted: submitted)
                if recorded { stages = stages.followingInference { _, _ in } }
                let p = FramePipeline(options: .init(queueDepth: 4, overflow: .block), stages: stages)
                let h = PipelineHarness(pipeline: p)
                for i in 0..<2 { submitted.submit("e-\(i)", to: p, received: received) }
                for _ in 0..<2 { gate.signal() }
                XCTAssertTrue(h.stop(drainTimeout: 5).drained)
                let original = makeFrame(id: "", width: 4, height: 4).cloud[0]
                XCTAssertEqual(h.results.map(\.model), Array(repeating: recorded ? "copied/4×4/\(original)" : "in place/4×4/no pixels", count: 2),
                               "received \(received)")
            }
        }
    }

    /// Reload: a frame the old preprocessing edited cannot be preprocessed again, so the old
    /// inference scores it; the frames after it get the new stages.
    func testFramesEditedByReplacedStagesAreScoredByThem() {
        let gate = DispatchSemaphore(value: 0), submitted = Addresses()
        let p = FramePipeline(options: .init(queueDepth: 4, overflow: .block),
                              stages: editingStages(gate: gate, submitted: submitted, tag: "old "))
        let h = PipelineHarness(pipeline: p)
        submitted.submit("e-0", to: p)
        XCTAssertTrue(waitUntil(2) { p.snapshot.preparing == 1 })
        p.replaceStages(editingStages(gate: gate, submitted: submitted, tag: "new "))
        submitted.submit("e-1", to: p)
        for _ in 0..<2 { gate.signal() }
        XCTAssertTrue(h.stop(drainTimeout: 5).drained)
        XCTAssertEqual(h.results.map(\.model), ["old in place/4×4/no pixels", "new in place/4×4/no pixels"])
    }

    func testIdlePipelineIsHealthy() {
        let h = PipelineHarness(.init(), [slowScorer(0)])
        XCTAssertTrue(h.pipeline.isHealthy(stallTimeout: 0.1))
        XCTAssertTrue(h.publisher.isHealthy(stallTimeout: 0.1))
        XCTAssertTrue(h.pipeline.isResolved)
        XCTAssertTrue(h.stop(drainTimeout: 1).drained)
    }

    /// Heartbeats carry the counters and the last sequence number, from the publisher thread.
    func testHeartbeatsCarryTheCounters() throws {
        let h = PipelineHarness(.init(queueDepth: 8, overflow: .block), [slowScorer(0)], heartbeatIntervalS: 0.1)
        for i in 0..<5 { h.pipeline.submit(frame("f-\(i)")) }
        h.pipeline.submitInvalid(FrameError(.badSize, "x", frameId: "f-5"))
        XCTAssertTrue(waitUntil(3) { h.output.heartbeats.contains { $0.lastSeq == 6 } })
        let beat = try XCTUnwrap(h.output.heartbeats.last)
        XCTAssertEqual([beat.received, beat.published, beat.undelivered, beat.pass + beat.reject, beat.error, beat.dropped], [6, 6, 0, 5, 1, 0])
        XCTAssertGreaterThan(beat.uptimeS, 0)
        let json = try XCTUnwrap(String(data: try JSONEncoder().encode(beat), encoding: .utf8))
        for key in ["\"in_flight\"", "\"uptime_s\"", "\"last_seq\"", "\"undelivered\"", "\"queued\""] { XCTAssertTrue(json.contains(key), key) }
        XCTAssertEqual(try beat.encode(topicPrefix: "result").first.map { String(decoding: $0, as: UTF8.self) }, "result.heartbeat")
        h.stop(drainTimeout: 1)
    }

    func testLatencyPercentiles() {
        let h = PipelineHarness(.init(queueDepth: 100, overflow: .block), [slowScorer(0.002)])
        for i in 0..<20 { h.pipeline.submit(frame("f-\(i)")) }
        XCTAssertTrue(h.stop(drainTimeout: 5).drained)
        let s = h.pipeline.snapshot
        XCTAssertGreaterThan(s.p50Ms, 1)
        XCTAssertGreaterThanOrEqual(s.p99Ms, s.p50Ms)
    }
}
