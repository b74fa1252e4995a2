@testable import CFMService
import Foundation
import Logging
import XCTest

final class SystemdTests: XCTestCase {
    func testNotifyMessagesReachNotifySocket() {
        let dir = TempDir()
        let listener = ScopedNotifyListener(directory: dir)
        let n = SystemdNotifier()
        XCTAssertTrue(n.isActive)
        n.ready(status: "frames 0")
        n.watchdog()
        n.reloading()
        n.stopping()
        let m = listener.receive(timeout: 2) { $0.count >= 4 }
        XCTAssertEqual(m.count, 4)
        XCTAssertEqual(m.first, "READY=1\nSTATUS=frames 0")
        XCTAssertEqual(m.dropFirst().first, "WATCHDOG=1")
        let reload = m.dropFirst(2).first ?? ""
        XCTAssertTrue(reload.hasPrefix("RELOADING=1\nMONOTONIC_USEC="), reload)
        let usec = UInt64(reload.split(separator: "=").last ?? "") ?? 0
        XCTAssertLessThanOrEqual(usec, monotonicNs() / 1000)
        XCTAssertGreaterThan(usec, monotonicNs() / 1000 - 10_000_000)
        XCTAssertEqual(m.last, "STOPPING=1")
    }

    func testWatchdogIntervalFromEnvironment() {
        let dir = TempDir()
        let listener = ScopedNotifyListener(directory: dir)
        XCTAssertNil(SystemdNotifier().watchdogInterval)
        setenv("WATCHDOG_USEC", "3000000", 1)
        setenv("WATCHDOG_PID", "\(getpid())", 1)
        XCTAssertEqual(SystemdNotifier().watchdogInterval, 3)
        setenv("WATCHDOG_PID", "1", 1)
        XCTAssertNil(SystemdNotifier().watchdogInterval, "for another process")
        _ = listener
    }

    func testNoNotifySocketIsANoOp() {
        unsetenv("NOTIFY_SOCKET")
        XCTAssertFalse(SystemdNotifier().isActive)
        XCTAssertEqual(SystemdNotifier.send(["READY=1"]), 0)
        let n = SystemdNotifier()
        n.ready()
        XCTAssertTrue(n.flush(until: monotonicNs() + 100_000_000), "nothing queued")
    }

    /// A manager that stops reading NOTIFY_SOCKET (its datagram queue full) must not hold the
    /// caller: while one message waits for room, later ones coalesce — a newer STATUS=
    /// replaces one not sent, a lifecycle message with STATUS= replaces it too, a WATCHDOG=1
    /// is not queued behind a waiting one — and once the manager reads, the lifecycle arrives
    /// complete and in order.
    func testUnreadNotifySocketCoalescesWithoutWaiting() {
        let dir = TempDir()
        let listener = ScopedNotifyListener(directory: dir)
        let filled = fillDatagramQueue(listener.path)
        XCTAssertGreaterThan(filled, 0)
        let n = SystemdNotifier()
        let started = monotonicNs()
        n.ready(status: "starting")
        XCTAssertTrue(waitUntil(2) { !n.flush(until: monotonicNs()) }, "the notifier's thread waits for room")
        n.status("a")
        n.watchdog()
        n.status("b")
        n.stopping(status: "c")
        n.status("d")
        n.watchdog()
        n.watchdog()
        XCTAssertLessThan(monotonicNs() - started, 500_000_000, "posting never waits for the manager")
        XCTAssertFalse(n.flush(until: monotonicNs() + 100_000_000), "the manager is not reading")
        let m = listener.receive(timeout: 3) { $0.count >= filled + 5 }
        XCTAssertEqual(Array(m.dropFirst(filled)), ["READY=1\nSTATUS=starting", "WATCHDOG=1", "STOPPING=1\nSTATUS=c", "STATUS=d", "WATCHDOG=1"])
        XCTAssertTrue(n.flush(until: monotonicNs() + 1_000_000_000))
    }

    /// The daemon with a manager that never reads NOTIFY_SOCKET and STATUS= every 0.1 s:
    /// it serves, and a stop (what SIGTERM requests) ends `run` promptly with every frame
    /// answered (main: the supervisor blocked in sd_notify and never saw the stop).
    func testUnreadNotifySocketDoesNotHoldTheDaemon() throws {
        let dir = TempDir()
        let listener = ScopedNotifyListener(directory: dir)
        let filled = fillDatagramQueue(listener.path)
        var config = serviceTestConfig(dir)
        config.watchdog.statusIntervalS = 0.1
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let service = EdgeService(config: config, logger: logger) { _ in FrameStages(scoring: [slowScorer(0)]) }
        let sensor = try FakeSensor(input: config.input.endpoint, output: config.output.endpoint)
        let (thread, outcome) = startService(service)
        XCTAssertTrue(waitUntil(5) { service.stats != nil })
        usleep(500_000) // five STATUS= intervals against the full queue
        try sensor.send(FrameCodec.encode(makeFrame(id: "f-1", width: 8, height: 6)))
        XCTAssertEqual(try sensor.results(1, timeout: 5).map(\.frameId), ["f-1"])
        service.requestStop()
        let stopped = waitUntil(3) { thread.isFinished }
        XCTAssertTrue(stopped, "stop honoured while NOTIFY_SOCKET is unread")
        if !stopped { // release the daemon so the tests can go on
            XCTAssertTrue(waitUntil(30) { listener.drain(); return thread.isFinished })
        }
        XCTAssertEqual(outcome.value?.stats.published, 1)
        let m = listener.receive(timeout: 3) { $0.contains { $0.hasPrefix("STOPPING=1") } }
        let lifecycle = m.dropFirst(filled).filter { !$0.hasPrefix("STATUS=") }
        XCTAssertEqual(lifecycle.map { $0.split(separator: "\n").first.map(String.init) ?? "" }, ["READY=1", "STOPPING=1"], "\(m)")
    }

    func testJournalFields() {
        var handler = JournalLogHandler(label: "cfm", destination: .journal)
        handler.metadata["cfm_tier"] = "small"
        let event = LogEvent(level: .notice, message: "reject p1", metadata: ["frame_id": "p1", "verdict": "reject", "score": "3.5",
                                                                              "latency_ms": "12.0", "error-code": "x", "_secret": "y"],
                             source: "cfm", file: "EdgeService.swift", function: "logResult(_:)", line: 42)
        let fields = handler.fields(event)
        XCTAssertEqual(Array(fields.prefix(6)), ["MESSAGE=reject p1", "PRIORITY=5", "SYSLOG_IDENTIFIER=cfm", "CODE_FILE=EdgeService.swift",
                                                 "CODE_LINE=42", "CODE_FUNC=logResult(_:)"])
        for field in ["FRAME_ID=p1", "VERDICT=reject", "SCORE=3.5", "LATENCY_MS=12.0", "CFM_TIER=small", "ERROR_CODE=x", "SECRET=y"] {
            XCTAssertTrue(fields.contains(field), field)
        }
        XCTAssertEqual(JournalLogHandler.priority(.warning), 4)
        XCTAssertEqual(JournalLogHandler.priority(.info), 6)
        XCTAssertEqual(JournalLogHandler.fieldName("9lives"), "F9LIVES")
        XCTAssertEqual(LogDestination.resolve(.off), .stderr)
        XCTAssertEqual(LogDestination.resolve(.on), .journal)
    }

    /// systemd-analyze verify on both units (the binary path replaced by an existing one).
    func testUnitFilesVerify() throws {
        guard let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first(where: FileManager.default.isExecutableFile) else {
            throw XCTSkip("systemd-analyze is not installed: unit files not verified")
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let dir = TempDir()
        for (unit, name) in [("cfm.service", "cfm.service"), ("cfm@.service", "cfm@line1.service")] {
            let text = try String(contentsOf: root.appendingPathComponent("systemd/\(unit)"), encoding: .utf8)
            for key in ["Type=notify", "WatchdogSec=", "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID", "DynamicUser=yes",
                        "StateDirectory=", "ConfigurationDirectory=cfm", "NoNewPrivileges=yes", "ProtectSystem=strict",
                        "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
                        "SystemCallFilter=@system-service", "MemoryDenyWriteExecute=yes", "LockPersonality=yes",
                        "RestrictRealtime=yes", "CapabilityBoundingSet=\n", "MemoryMax=", "TasksMax="] {
                XCTAssertTrue(text.contains(key), "\(unit) lacks \(key)")
            }
            if unit.contains("@") { XCTAssertTrue(text.contains("--config /etc/cfm/%i.yaml")) }
            // A bad config fails `systemctl reload` before the daemon is signalled.
            let config = unit.contains("@") ? "/etc/cfm/%i.yaml" : "/etc/cfm/cfm.yaml"
            let check = text.range(of: "ExecReload=/usr/local/bin/cfm serve --config \(config) --check-config\n")
            let signal = text.range(of: "ExecReload=/bin/kill -HUP $MAINPID")
            XCTAssertNotNil(check, "\(unit) validates the config in ExecReload=")
            XCTAssertLessThan(check?.lowerBound ?? text.endIndex, signal?.lowerBound ?? text.startIndex, "\(unit): check before the signal")
            try text.replacingOccurrences(of: "/usr/local/bin/cfm", with: "/bin/true")
                .write(toFile: dir.path(name), atomically: true, encoding: .utf8)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: analyze)
        process.arguments = ["verify", dir.path("cfm.service"), dir.path("cfm@line1.service")]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        process.waitUntilExit()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 0, output)
        XCTAssertEqual(output.trimmingCharacters(in: .whitespacesAndNewlines), "", output)
    }
}

/// Fills the datagram queue of the unix socket at `path` without blocking (as a manager
/// that stops reading leaves it); returns how many datagrams it took.
func fillDatagramQueue(_ path: String) -> Int {
    let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
    precondition(fd >= 0)
    defer { close(fd) }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
        let bytes = Array(path.utf8)
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    let message = Array("STATUS=filler".utf8)
    var count = 0
    while count < 10_000 {
        let sent = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, message, message.count, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if sent < 0 { break }
        count += 1
    }
    return count
}
