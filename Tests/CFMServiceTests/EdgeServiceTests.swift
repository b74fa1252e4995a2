@testable import CFMService
import Foundation
import Logging
import XCTest

/// A sensor and a result subscriber on loopback (ipc:// in a temp dir), like `cfm replay`.
final class FakeSensor {
    let context: ZMQContext
    let push: ZMQSocket
    let sub: ZMQSocket

    init(input: String, output: String) throws {
        context = try ZMQContext()
        push = try ZMQSocket(context, .push)
        try push.linger(milliseconds: 0)
        try push.connect(input)
        sub = try ZMQSocket(context, .sub)
        try sub.subscribe("result")
        try sub.linger(milliseconds: 0)
        try sub.connect(output)
    }

    deinit { push.close(); sub.close() }

    func send(_ parts: [[UInt8]]) throws { try push.send(parts) }

    /// Heartbeats seen by `results` so far.
    private(set) var heartbeats: [Heartbeat] = []

    /// The next `count` results (with their `seq`) within `timeout` s; heartbeats are set apart.
    func results(_ count: Int, timeout: Double = 10) throws -> [FrameResult] {
        try collectResults(from: sub, count, timeout: timeout) { heartbeats.append($0) }
    }
}

/// Reads up to `count` results from a result-stream socket within `timeout` s; heartbeats
/// go to `heartbeat`.
func collectResults(from socket: ZMQSocket, _ count: Int, timeout: Double, heartbeat: (Heartbeat) -> Void = { _ in }) throws -> [FrameResult] {
    var out: [FrameResult] = []
    let deadline = Date(timeIntervalSinceNow: timeout)
    while out.count < count && Date() < deadline {
        guard try socket.pollIn(milliseconds: 50), let parts = try socket.receive() else { continue }
        if let beat = Heartbeat.decode(parts) { heartbeat(beat); continue }
        var r = try FrameCodec.decodeResult(parts)
        r.sequence = resultSequence(parts)
        out.append(r)
    }
    return out
}

final class Calls: @unchecked Sendable {
    private let lock = NSLock()
    private var configs: [ServiceConfig] = []
    func add(_ c: ServiceConfig) { lock.lock(); configs.append(c); lock.unlock() }
    var count: Int { lock.lock(); defer { lock.unlock() }; return configs.count }
}

final class EdgeServiceTests: XCTestCase {
    private func makeConfig(_ dir: TempDir) -> ServiceConfig { serviceTestConfig(dir) }

    private func yaml(_ c: ServiceConfig, extra: String = "") -> String {
        """
        input: {endpoint: "\(c.input.endpoint)", pattern: pull, mode: bind, max_width: 64, max_height: 64}
        output: {endpoint: "\(c.output.endpoint)"}
        pipeline: {queue_depth: 64, overflow: block}
        logging: {journald: off}
        \(extra)
        """
    }

    private func start(_ service: EdgeService) -> Thread { startService(service).thread }

    func testServeOrderErrorsReloadAndDrain() throws {
        let dir = TempDir()
        let listener = ScopedNotifyListener(directory: dir)
        let config = makeConfig(dir)
        let configFile = URL(fileURLWithPath: dir.path("cfm.yaml"))
        try yaml(config).write(to: configFile, atomically: true, encoding: .utf8)
        let calls = Calls()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let service = EdgeService(config: try ServiceConfig.load(configFile), configURL: configFile, logger: logger) { c in
            calls.add(c)
            if c.model.bundle == "/broken" { throw ServiceSetupError("model does not load") }
            return FrameStages(scoring: [slowScorer(calls.count == 1 ? 0.005 : 0.02)])
        }
        let sensor = try FakeSensor(input: config.input.endpoint, output: config.output.endpoint)
        let thread = start(service)
        let ready = listener.receive(timeout: 5) { $0.contains { $0.hasPrefix("READY=1") } }
        XCTAssertTrue(ready.contains { $0.hasPrefix("READY=1") }, "\(ready)")
        usleep(300_000) // SUB join

        // N frames in → N results out, in order; malformed frames of every codec kind → their codes.
        let good = FrameCodec.encode(makeFrame(id: "x", width: 8, height: 6))
        var expected: [(String?, String?)] = []
        for i in 0..<30 {
            var parts = FrameCodec.encode(makeFrame(id: "f-\(i)", width: 8, height: 6))
            var code: String?
            switch i % 10 {
            case 3: parts.removeLast(); code = "bad_parts"
            case 5: parts[1] = Array("{oops".utf8); code = "bad_header"
            case 6: parts[2].removeLast(); code = "bad_size"
            case 7: parts[1] = Array(#"{"v":1,"frame_id":"f-\#(i)","width":1000,"height":6}"#.utf8); code = "too_large"
            case 8: parts[3] = FrameCodec.littleEndianBytes([Float](repeating: 1e20, count: good[3].count / 4)); code = "out_of_range"
            case 9: parts = FrameCodec.encode(makeFrame(id: "fail-\(i)", width: 8, height: 6)); code = "too_few_points"
            default: break
            }
            expected.append((i % 10 == 5 ? nil : (i % 10 == 9 ? "fail-\(i)" : "f-\(i)"), code))
            try sensor.send(parts)
        }
        let results = try sensor.results(30)
        XCTAssertEqual(results.count, 30)
        for (r, (id, code)) in zip(results, expected) {
            XCTAssertEqual(r.frameId, id)
            if let code {
                XCTAssertEqual(r.verdict, .error, "\(id ?? "")")
                XCTAssertEqual(r.error?.code.rawValue, code, "\(id ?? "")")
            } else {
                XCTAssertTrue(r.verdict == .pass || r.verdict == .reject)
                XCTAssertEqual(r.tier, "small")
                XCTAssertNotNil(r.score)
            }
        }

        // SIGHUP with a good config: RELOADING=1 + MONOTONIC_USEC, then READY=1; the model is rebuilt.
        try yaml(config, extra: "logging: {journald: off, level: debug}\n").replacingOccurrences(of: "logging: {journald: off}\n", with: "")
            .write(to: configFile, atomically: true, encoding: .utf8)
        _ = listener.receive(timeout: 0.05)
        service.requestReload()
        var m = listener.receive(timeout: 5) { $0.contains { $0.hasPrefix("READY=1") } }
        XCTAssertTrue(m.contains { $0.hasPrefix("RELOADING=1\nMONOTONIC_USEC=") }, "\(m)")
        XCTAssertTrue(m.contains { $0.hasPrefix("READY=1") }, "\(m)")
        XCTAssertEqual(service.reloads.applied, 1)
        XCTAssertEqual(calls.count, 2)
        XCTAssertEqual(service.config.logging.level, "debug")

        // A bad config (unknown key) and a model that does not load: refused, the old one keeps serving.
        try (yaml(config) + "model: {tierr: tiny}\n").write(to: configFile, atomically: true, encoding: .utf8)
        service.requestReload()
        m = listener.receive(timeout: 5) { $0.contains { $0.hasPrefix("READY=1") } }
        XCTAssertTrue(m.contains { $0.hasPrefix("READY=1") }, "\(m)")
        // The refusal and its reason are in STATUS= (systemctl status), and stay there while the old config serves.
        let refusal = try XCTUnwrap(m.first { $0.hasPrefix("READY=1\nSTATUS=reload refused: \(configFile.path):") }, "\(m)")
        XCTAssertTrue(refusal.contains("unknown key 'model.tierr'") && refusal.contains("(the previous config keeps serving); frames "), refusal)
        service.requestReload() // the same bad file again: a second refusal, same STATUS=
        m = listener.receive(timeout: 5) { $0.contains { $0.hasPrefix("READY=1") } }
        XCTAssertTrue(m.contains { $0.contains("unknown key 'model.tierr'") }, "\(m)")
        try (yaml(config) + "model: {bundle: /broken}\n").write(to: configFile, atomically: true, encoding: .utf8)
        service.requestReload()
        m = listener.receive(timeout: 5) { $0.contains { $0.hasPrefix("READY=1") } }
        XCTAssertEqual(service.reloads.refused, 3)
        XCTAssertEqual(service.reloads.applied, 1)
        XCTAssertEqual(service.config.logging.level, "debug")
        try sensor.send(FrameCodec.encode(makeFrame(id: "after-reload-0", width: 8, height: 6)))
        XCTAssertEqual(try sensor.results(1).first?.frameId, "after-reload-0")

        // SIGTERM mid-stream: STOPPING=1, everything received is drained and published, run returns.
        for i in 0..<20 { try sensor.send(FrameCodec.encode(makeFrame(id: "late-\(i)", width: 8, height: 6))) }
        XCTAssertTrue(waitUntil(5) { (service.stats?.received ?? 0) >= 31 + 20 })
        let queued = service.stats?.queued ?? 0
        service.requestStop()
        m = listener.receive(timeout: 5) { $0.contains { $0.hasPrefix("STOPPING=1") } }
        XCTAssertGreaterThan(queued, 5, "frames were still waiting when the stop came")
        XCTAssertTrue(m.contains { $0.hasPrefix("STOPPING=1") }, "\(m)")
        XCTAssertTrue(waitUntil(10) { thread.isFinished })
        let late = try sensor.results(20, timeout: 3)
        XCTAssertEqual(late.map(\.frameId), (0..<20).map { "late-\($0)" })
        XCTAssertTrue(late.allSatisfy { $0.verdict == .pass || $0.verdict == .reject })
        let s = try XCTUnwrap(service.stats)
        XCTAssertEqual(s.received, s.published)
        XCTAssertEqual(s.published, 31 + 20)
    }

    func testWatchdogIsFedOnlyWhileThePipelineProgresses() throws {
        let dir = TempDir()
        let listener = ScopedNotifyListener(directory: dir)
        setenv("WATCHDOG_USEC", "400000", 1)
        setenv("WATCHDOG_PID", "\(getpid())", 1)
        var config = makeConfig(dir)
        config.watchdog.stallTimeoutS = 0.3
        config.watchdog.statusIntervalS = 0.2
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let service = EdgeService(config: config, logger: logger) { _ in
            FrameStages(scoring: [{ frame in
                if frame.frameId == "stall" { usleep(1_500_000) }
                return Inference(score: 1, threshold: 2, tier: "tiny", model: "fake")
            }])
        }
        let sensor = try FakeSensor(input: config.input.endpoint, output: config.output.endpoint)
        let thread = start(service)
        let before = listener.receive(timeout: 1.2)
        XCTAssertGreaterThanOrEqual(before.filter { $0 == "WATCHDOG=1" }.count, 3, "\(before)")
        XCTAssertTrue(before.contains { $0.hasPrefix("STATUS=frames ") }, "\(before)")
        try sensor.send(FrameCodec.encode(makeFrame(id: "stall", width: 8, height: 6)))
        XCTAssertTrue(waitUntil(2) { (service.stats?.inFlight ?? 0) == 1 })
        usleep(500_000) // past stall_timeout_s
        listener.drain()
        let during = listener.receive(timeout: 0.7)
        XCTAssertFalse(during.contains("WATCHDOG=1"), "a stalled worker must starve the watchdog: \(during)")
        XCTAssertEqual(try sensor.results(1, timeout: 3).first?.frameId, "stall")
        let after = listener.receive(timeout: 0.8)
        XCTAssertTrue(after.contains("WATCHDOG=1"), "fed again once the pipeline moves: \(after)")
        service.requestStop()
        XCTAssertTrue(waitUntil(5) { thread.isFinished })
    }

    func testStartupFailsWithOneLineReason() {
        let dir = TempDir()
        var config = makeConfig(dir)
        config.output.endpoint = "tcp://256.1.1.1:1"
        let service = EdgeService(config: config, logger: Logger(label: "test")) { _ in FrameStages(scoring: [slowScorer(0)]) }
        XCTAssertThrowsError(try service.run()) { error in
            XCTAssertTrue("\(error)".hasPrefix("sockets: zmq_bind(tcp://256.1.1.1:1)"), "\(error)")
        }
        let failing = EdgeService(config: makeConfig(dir), logger: Logger(label: "test")) { _ in throw ServiceSetupError("no threshold: x") }
        XCTAssertThrowsError(try failing.run()) { error in
            XCTAssertEqual("\(error)", "cannot load the model: no threshold: x")
        }
    }

    /// The independent Python client (tools/client_example.py, pyzmq) against the daemon.
    func testPythonClientExample() throws {
        let python = "/usr/bin/python3"
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: python)
        probe.arguments = ["-c", "import zmq, numpy"]
        probe.standardError = FileHandle.nullDevice
        guard (try? probe.run()) != nil else { throw XCTSkip("\(python) is missing") }
        probe.waitUntilExit()
        guard probe.terminationStatus == 0 else { throw XCTSkip("pyzmq/numpy missing (apt-get install python3-zmq python3-numpy)") }

        let dir = TempDir()
        var config = makeConfig(dir)
        config.input.pattern = .sub
        config.input.mode = .connect
        config.input.maxWidth = 4096
        config.input.maxHeight = 4096
        config.output.heartbeatIntervalS = 0.2
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let service = EdgeService(config: config, logger: logger) { _ in FrameStages(scoring: [slowScorer(0.002)]) }
        let thread = start(service)
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let client = Process()
        client.executableURL = URL(fileURLWithPath: python)
        client.arguments = [root.appendingPathComponent("tools/client_example.py").path, "--endpoint", config.input.endpoint,
                            "--results", config.output.endpoint, "--frames", "6", "--malformed", "--warmup", "0.5", "--timeout", "10"]
        let pipe = Pipe()
        client.standardOutput = pipe
        try client.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        client.waitUntilExit()
        XCTAssertEqual(client.terminationStatus, 0, output)
        XCTAssertTrue(output.contains(#""sent": 11, "answered": 11"#), output)
        XCTAssertTrue(output.contains(#""missed_by_seq": 0"#), output)
        XCTAssertTrue(output.contains("heartbeat: up "), "the client shows heartbeats: \(output)")
        for code in ["bad_parts", "bad_header", "bad_size", "too_large", "out_of_range"] { XCTAssertTrue(output.contains("error   \(code):"), code) }
        service.requestStop()
        XCTAssertTrue(waitUntil(5) { thread.isFinished })
    }
}
