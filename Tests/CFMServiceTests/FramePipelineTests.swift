@testable import CFMService
import CFMDetector
import Foundation
import XCTest

/// Results the publisher hands out, in order.
final class ResultSink: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [FrameResult] = []
    func add(_ r: FrameResult) { lock.lock(); items.append(r); lock.unlock() }
    var results: [FrameResult] { lock.lock(); defer { lock.unlock() }; return items }
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
        let sink = ResultSink()
        let p = FramePipeline(options: .init(queueDepth: 4, overflow: .block), processors: [slowScorer(0)], publish: sink.add)
        p.start()
        for i in 0..<50 {
            if i % 7 == 3 { p.submitInvalid(FrameError(.badSize, "x", frameId: "f-\(i)")) } else { p.submit(frame("f-\(i)")) }
        }
        XCTAssertTrue(p.drain(timeout: 5))
        let r = sink.results
        XCTAssertEqual(r.map(\.frameId), (0..<50).map { "f-\($0)" })
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
        XCTAssertEqual(s.errors, 7)
        XCTAssertEqual(s.passed + s.rejected, 43)
        XCTAssertEqual(s.errorCodes, ["bad_size": 7])
    }

    func testProcessorErrorsBecomeErrorResults() {
        let sink = ResultSink()
        let p = FramePipeline(options: .init(), processors: [slowScorer(0)], publish: sink.add)
        p.start()
        p.submit(frame("fail-1"))
        p.submit(frame("ok-2"))
        XCTAssertTrue(p.drain(timeout: 5))
        XCTAssertEqual(sink.results.map(\.verdict), [.error, .pass])
        XCTAssertEqual(sink.results.first?.error?.code, .tooFewPoints)
        XCTAssertEqual(sink.results.first?.frameId, "fail-1")
    }

    /// Overload: 60 frames at once against a 10 ms scorer. Every frame gets exactly one
    /// result, in submission order; the queue never exceeds its depth.
    func testOverloadDropOldest() { overload(.dropOldest) }
    func testOverloadDropNewest() { overload(.dropNewest) }
    func testOverloadBlock() { overload(.block) }

    private func overload(_ policy: OverflowPolicy) {
        let sink = ResultSink()
        let p = FramePipeline(options: .init(queueDepth: 3, overflow: policy), processors: [slowScorer(0.01)], publish: sink.add)
        p.start()
        for i in 0..<60 { p.submit(frame("f-\(i)")) }
        XCTAssertTrue(p.drain(timeout: 10))
        let r = sink.results
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
        let sink = ResultSink()
        // Alternating slow and fast workers: results finish out of order, publish in order.
        let p = FramePipeline(options: .init(queueDepth: 8, overflow: .block, workers: 3),
                              processors: [slowScorer(0.02), slowScorer(0.001), slowScorer(0.007)], publish: sink.add)
        p.start()
        for i in 0..<40 { p.submit(frame("f-\(i)")) }
        XCTAssertTrue(p.drain(timeout: 10))
        XCTAssertEqual(sink.results.map(\.frameId), (0..<40).map { "f-\($0)" })
    }

    func testStallIsVisibleAndDrainTimeoutShedsTheRest() {
        let sink = ResultSink()
        let p = FramePipeline(options: .init(queueDepth: 4, overflow: .block), processors: [slowScorer(1.0)], publish: sink.add)
        p.start()
        for i in 0..<3 { p.submit(frame("f-\(i)")) }
        XCTAssertTrue(waitUntil(2) { p.snapshot.inFlight == 1 })
        usleep(300_000)
        XCTAssertFalse(p.isHealthy(stallTimeout: 0.2), "a frame stuck in inference is a stall")
        XCTAssertTrue(p.isHealthy(stallTimeout: 5))
        XCTAssertFalse(p.drain(timeout: 0.1))
        let r = sink.results
        XCTAssertEqual(r.map(\.frameId), ["f-0", "f-1", "f-2"])
        XCTAssertEqual(r.map(\.verdict), [.dropped, .dropped, .dropped])
        usleep(1_000_000) // the abandoned worker finishes; its late result must not be published
        XCTAssertEqual(sink.results.count, 3)
    }

    func testIdlePipelineIsHealthy() {
        let p = FramePipeline(options: .init(), processors: [slowScorer(0)], publish: { _ in })
        p.start()
        XCTAssertTrue(p.isHealthy(stallTimeout: 0.1))
        XCTAssertTrue(p.isIdle)
        XCTAssertTrue(p.drain(timeout: 1))
    }

    func testLatencyPercentiles() {
        let sink = ResultSink()
        let p = FramePipeline(options: .init(queueDepth: 100, overflow: .block), processors: [slowScorer(0.002)], publish: sink.add)
        p.start()
        for i in 0..<20 { p.submit(frame("f-\(i)")) }
        XCTAssertTrue(p.drain(timeout: 5))
        let s = p.snapshot
        XCTAssertGreaterThan(s.p50Ms, 1)
        XCTAssertGreaterThanOrEqual(s.p99Ms, s.p50Ms)
    }
}
