@testable import CFMService
import CZeroMQ
import Foundation
import Logging
import XCTest

/// Shutdown paths and the result stream's delivery guarantees, end to end over real
/// ZeroMQ (ipc:// in a temp dir): every received frame gets exactly one result, the
/// threads are joined before their sockets close, and loss is counted, never silent.
final class ServiceLifecycleTests: XCTestCase {
    private func quietLogger() -> Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }

    /// overflow block + stop while the receive thread waits for queue room and frames are
    /// still arriving: every frame the daemon counted as received is answered once, in
    /// order, and `run` returns (main: "received 10, published 8", then a crash closing
    /// the input socket under the receive thread).
    func testStopUnderBlockOverflowAnswersEveryReceivedFrame() throws {
        let dir = TempDir()
        var config = serviceTestConfig(dir)
        config.pipeline.queueDepth = 1
        config.pipeline.drainTimeoutS = 0.3
        let service = EdgeService(config: config, logger: quietLogger()) { _ in FrameStages(scoring: [slowScorer(0.2)]) }
        let sensor = try FakeSensor(input: config.input.endpoint, output: config.output.endpoint)
        let (thread, outcome) = startService(service)
        XCTAssertTrue(waitUntil(5) { service.stats != nil })
        usleep(200_000) // SUB join
        for i in 0..<10 { try sensor.send(FrameCodec.encode(makeFrame(id: "f-\(i)", width: 8, height: 6))) }
        XCTAssertTrue(waitUntil(5) { (service.stats?.received ?? 0) >= 3 })
        service.requestStop()
        XCTAssertTrue(waitUntil(5) { thread.isFinished }, "run returns")
        let s = try XCTUnwrap(outcome.value?.stats)
        XCTAssertEqual(outcome.value?.drained, false)
        XCTAssertEqual(s.received, s.published)
        XCTAssertEqual(s.undelivered, 0)
        let results = try sensor.results(10, timeout: 2)
        XCTAssertEqual(results.map(\.frameId), (0..<s.received).map { "f-\($0)" }, "one result per received frame, in order")
        XCTAssertEqual(results.map(\.sequence), (1...s.received).map { UInt64($0) })
        XCTAssertTrue(results.contains { $0.verdict == .dropped && $0.error?.message == "shutdown: drain timeout" })
    }

    /// The drain timeout expires with a frame in inference: it is published as `dropped`,
    /// `run` returns without waiting for the worker, and the worker — which keeps the
    /// pipeline and its processor alive — finishes later without publishing anything.
    func testDrainTimeoutGivesUpTheFrameInInference() throws {
        let dir = TempDir()
        var config = serviceTestConfig(dir)
        config.pipeline.drainTimeoutS = 0.2
        let finished = Calls()
        let service = EdgeService(config: config, logger: quietLogger()) { c in
            FrameStages(scoring: [{ frame in
                usleep(3_000_000)
                finished.add(c)
                return Inference(score: 1, threshold: 2, tier: "tiny", model: "fake")
            }])
        }
        let sensor = try FakeSensor(input: config.input.endpoint, output: config.output.endpoint)
        let (thread, outcome) = startService(service)
        XCTAssertTrue(waitUntil(5) { service.stats != nil })
        usleep(200_000)
        try sensor.send(FrameCodec.encode(makeFrame(id: "slow-1", width: 8, height: 6)))
        XCTAssertTrue(waitUntil(2) { service.stats?.inFlight == 1 })
        service.requestStop()
        XCTAssertTrue(waitUntil(5) { thread.isFinished })
        XCTAssertEqual(finished.count, 0, "run returned without waiting for the frame in inference")
        XCTAssertEqual(outcome.value?.abandonedWorkers, 1)
        let results = try sensor.results(1, timeout: 2)
        XCTAssertEqual(results.map(\.frameId), ["slow-1"])
        XCTAssertEqual(results.first?.verdict, .dropped)
        XCTAssertEqual(results.first?.error?.message, "shutdown: still in inference at the drain timeout")
        XCTAssertTrue(waitUntil(5) { finished.count == 1 && service.stats?.inFlight == 0 }, "the worker finished")
        XCTAssertEqual(try sensor.results(1, timeout: 0.3).count, 0, "its late result is discarded")
        XCTAssertEqual(service.stats?.published, 1)
    }

    /// PUB with one subscriber that never reads and one that does, large results (maps):
    /// the results the idle one's full queue refuses are counted as undelivered (PUB sends
    /// to all or none), both subscribers see exactly those as gaps in `seq`, and the
    /// heartbeat carries the count (main: all counted as published, silently lost).
    func testIdleSubscriberLossIsCounted() throws {
        let dir = TempDir()
        var config = serviceTestConfig(dir)
        config.output.publishMaps = true
        config.output.sendHwm = 4
        config.output.sendTimeoutMs = 20
        config.output.heartbeatIntervalS = 0.2
        let map = [Float](repeating: 0.5, count: 224 * 224)
        let service = EdgeService(config: config, logger: quietLogger()) { _ in
            FrameStages(scoring: [{ _ in Inference(score: 1, threshold: 2, tier: "tiny", model: "fake", map: map) }])
        }
        let sensor = try FakeSensor(input: config.input.endpoint, output: config.output.endpoint)
        let idle = try ZMQSocket(sensor.context, .sub)
        try idle.receiveHighWaterMark(4)
        try idle.subscribe("result")
        try idle.linger(milliseconds: 0)
        try idle.connect(config.output.endpoint)
        let (thread, _) = startService(service)
        XCTAssertTrue(waitUntil(5) { service.stats != nil })
        usleep(300_000) // SUB join
        let frames = 60
        for i in 0..<frames { try sensor.send(FrameCodec.encode(makeFrame(id: "f-\(i)", width: 8, height: 6))) }
        // The reading subscriber's queue (RCVHWM 1000) takes everything; the idle one does not read at all.
        XCTAssertTrue(waitUntil(10) { service.stats?.published == frames })
        let seen = try sensor.results(frames, timeout: 1)
        let s = try XCTUnwrap(service.stats)
        XCTAssertEqual(s.received, frames)
        XCTAssertGreaterThan(s.undelivered, frames / 2, "the idle subscriber's full queue refused results")
        XCTAssertEqual(s.lastSequence, UInt64(frames))
        let seqs = seen.compactMap(\.sequence)
        XCTAssertEqual(seqs.count, frames - s.undelivered, "the reading subscriber got every result that was sent")
        XCTAssertEqual(seqs, seqs.sorted())
        // The idle subscriber reads now: it got the same results, no more.
        let late = try collectResults(from: idle, frames, timeout: 1).compactMap(\.sequence)
        XCTAssertEqual(late, seqs)
        // With room again, heartbeats flow, carrying the count.
        XCTAssertTrue(waitUntil(3) { (try? sensor.results(1, timeout: 0.3)) != nil && sensor.heartbeats.contains { $0.undelivered == s.undelivered } },
                      "the heartbeat counts them: \(sensor.heartbeats.last.map { "\($0)" } ?? "none")")
        idle.close()
        service.requestStop()
        XCTAssertTrue(waitUntil(5) { thread.isFinished })
    }

    /// PUSH is lossless for one consumer: with no consumer the publisher waits (not a
    /// stall), the consumer that connects later gets every result in order; results still
    /// waiting when the daemon stops without a consumer are counted as undelivered.
    func testPushWaitsForItsConsumer() throws {
        let dir = TempDir()
        var config = serviceTestConfig(dir)
        config.output.pattern = .push
        config.output.heartbeatIntervalS = 0
        config.output.lingerMs = 200
        let service = EdgeService(config: config, logger: quietLogger()) { _ in FrameStages(scoring: [slowScorer(0)]) }
        let context = try ZMQContext()
        let sensor = try ZMQSocket(context, .push)
        try sensor.linger(milliseconds: 0)
        try sensor.connect(config.input.endpoint)
        let (thread, outcome) = startService(service)
        XCTAssertTrue(waitUntil(5) { service.stats != nil })
        for i in 0..<8 { try sensor.send(FrameCodec.encode(makeFrame(id: "f-\(i)", width: 8, height: 6))) }
        XCTAssertTrue(waitUntil(5) { service.stats?.received == 8 })
        usleep(500_000)
        XCTAssertEqual(service.stats?.published, 0, "no consumer yet: nothing is sent")
        XCTAssertEqual(service.stats?.undelivered, 0, "and nothing is given up")

        let consumer = try ZMQSocket(context, .pull)
        try consumer.linger(milliseconds: 0)
        try consumer.connect(config.output.endpoint)
        let results = try collectResults(from: consumer, 8, timeout: 5)
        XCTAssertEqual(results.map(\.frameId), (0..<8).map { "f-\($0)" })
        XCTAssertEqual(results.map(\.sequence), (1...8).map { UInt64($0) })
        consumer.close()

        // The consumer is gone: two more results wait; the stop gives them up after linger_ms, counted.
        usleep(200_000)
        for i in 8..<10 { try sensor.send(FrameCodec.encode(makeFrame(id: "f-\(i)", width: 8, height: 6))) }
        XCTAssertTrue(waitUntil(5) { service.stats?.received == 10 })
        service.requestStop()
        XCTAssertTrue(waitUntil(5) { thread.isFinished })
        let s = try XCTUnwrap(outcome.value?.stats)
        XCTAssertEqual([s.received, s.published, s.undelivered], [10, 10, 2])
        sensor.close()
    }

    /// An idle subscriber in another process (pyzmq, RCVHWM 100: its own queue takes the
    /// first 100) and 600 large results (maps, ~200 KB each): the daemon side holds at most
    /// `send_hwm` of them, so its memory grows by ~send_hwm × 200 KB (default 100: ~20 MB),
    /// and the results that find every queue full are counted.
    func testIdleSubscriberMemoryIsBoundedBySendHwm() throws {
        let python = "/usr/bin/python3"
        guard FileManager.default.isExecutableFile(atPath: python) else { throw XCTSkip("\(python) is missing") }
        let dir = TempDir()
        var config = serviceTestConfig(dir)
        config.output.publishMaps = true
        config.output.heartbeatIntervalS = 0
        let map = [Float](repeating: 0.5, count: 224 * 224)
        let service = EdgeService(config: config, logger: quietLogger()) { _ in
            FrameStages(scoring: [{ _ in Inference(score: 1, threshold: 2, tier: "tiny", model: "fake", map: map) }])
        }
        let idle = Process()
        idle.executableURL = URL(fileURLWithPath: python)
        idle.arguments = ["-c", "import sys, time, zmq; s = zmq.Context().socket(zmq.SUB); s.rcvhwm = 100; s.subscribe(b''); "
                                + "s.connect(sys.argv[1]); "
                                + "print('ready', flush=True); time.sleep(60)", config.output.endpoint]
        let pipe = Pipe()
        idle.standardOutput = pipe
        do { try idle.run() } catch { throw XCTSkip("cannot run \(python): \(error)") }
        defer { idle.terminate(); idle.waitUntilExit() }
        guard String(decoding: pipe.fileHandleForReading.availableData, as: UTF8.self).hasPrefix("ready") else {
            throw XCTSkip("pyzmq is missing (apt-get install python3-zmq)")
        }
        let sensor = try FakeSensor(input: config.input.endpoint, output: config.output.endpoint)
        sensor.sub.close() // only the idle subscriber
        let (thread, _) = startService(service)
        XCTAssertTrue(waitUntil(5) { service.stats != nil })
        usleep(500_000) // the subscriber joins
        let frames = 600, before = ResidentMemory.currentMegabytes()
        for i in 0..<frames { try sensor.send(FrameCodec.encode(makeFrame(id: "f-\(i)", width: 8, height: 6))) }
        XCTAssertTrue(waitUntil(180) { service.stats?.published == frames })
        let grown = ResidentMemory.currentMegabytes() - before
        let s = try XCTUnwrap(service.stats)
        print("idle subscriber, send_hwm \(config.output.sendHwm): RSS +\(String(format: "%.0f", grown)) MB after \(frames) results with maps, "
              + "undelivered \(s.undelivered)")
        XCTAssertGreaterThan(s.undelivered, frames - 100 - config.output.sendHwm - 50, "all but what the queues hold")
        XCTAssertLessThan(grown, 80, "the daemon holds at most send_hwm results for the idle subscriber")
        service.requestStop()
        XCTAssertTrue(waitUntil(5) { thread.isFinished })
    }

    func testOutputKeys() throws {
        let c = try ServiceConfig.parse("output: {pattern: push, send_timeout_ms: 0, heartbeat_interval_s: 0}")
        XCTAssertEqual([c.output.pattern.rawValue, "\(c.output.sendTimeoutMs)", "\(c.output.heartbeatIntervalS)"], ["push", "0", "0.0"])
        let d = ServiceConfig().output
        XCTAssertEqual([d.pattern.rawValue, "\(d.sendHwm)", "\(d.sendTimeoutMs)", "\(d.heartbeatIntervalS)"], ["pub", "100", "100", "2.0"])
        for (yaml, reason) in [("output: {pattern: xpub}", "'xpub' is not one of pub, push"),
                               ("output: {heartbeat_interval_s: 0.01}", "0.01 is below 0.1 (0 = no heartbeat)"),
                               ("output: {send_timeout_ms: 20000}", "20000 is out of range 0…10000")] {
            XCTAssertThrowsError(try ServiceConfig.parse(yaml, file: "cfm.yaml")) { error in
                XCTAssertTrue("\(error)".hasPrefix("cfm.yaml:1: ") && "\(error)".contains(reason), "\(error)")
            }
        }
    }
}
