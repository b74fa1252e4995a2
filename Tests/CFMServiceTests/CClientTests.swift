@testable import CFMService
import Foundation
import Logging
import XCTest

/// `tools/client_example.c`, the integrator's C reference, built with -Werror and run
/// against a running `EdgeService` over TCP loopback (a test processor scores).
final class CClientTests: XCTestCase {
    private func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    func testCClientGetsOneVerdictPerFrameAndHeartbeats() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/cc") else { throw XCTSkip("no C compiler") }
        let dir = TempDir()
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let client = dir.path("client_example")
        let build = try run("/usr/bin/cc", ["-std=c99", "-Wall", "-Wextra", "-Werror",
                                            root.appendingPathComponent("tools/client_example.c").path, "-lzmq", "-o", client])
        XCTAssertEqual(build.status, 0, build.output)

        var config = serviceTestConfig(dir)
        config.input.endpoint = "tcp://127.0.0.1:*"
        config.input.maxWidth = 4096
        config.input.maxHeight = 4096
        config.output.endpoint = "tcp://127.0.0.1:*"
        config.output.heartbeatIntervalS = 0.2
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let service = EdgeService(config: config, logger: logger) { _ in FrameStages(scoring: [slowScorer(0.05)]) }
        let (thread, _) = startService(service)
        XCTAssertTrue(waitUntil(10) { service.outputEndpoint != nil })
        let input = try XCTUnwrap(service.inputEndpoint), output = try XCTUnwrap(service.outputEndpoint)

        let answered = try run(client, ["--endpoint", input, "--results", output, "--frames", "8", "--timeout", "10"])
        XCTAssertEqual(answered.status, 0, answered.output)
        // slowScorer: even frame numbers pass, odd ones are rejected.
        XCTAssertTrue(answered.output.contains("sent 8, answered 8, pass 4, reject 4, error 0, dropped 0, duplicates 0"), answered.output)
        XCTAssertTrue(answered.output.contains("heartbeat: received "), answered.output)
        XCTAssertTrue(answered.output.contains("missed by seq 0"), answered.output)
        let verdictLines = answered.output.split(separator: "\n").filter { $0.contains(" model fake") }
        XCTAssertEqual(verdictLines.count, 8, answered.output)
        XCTAssertTrue(verdictLines.allSatisfy { $0.contains("score 1.0000") || $0.contains("score 3.0000") }, answered.output)

        service.requestStop()
        XCTAssertTrue(waitUntil(10) { thread.isFinished })

        // Nobody answers: a timeout with the reason, exit status 2.
        let silent = try run(client, ["--endpoint", "tcp://127.0.0.1:1", "--results", "tcp://127.0.0.1:2", "--frames", "2",
                                      "--warmup", "0", "--timeout", "0.5"])
        XCTAssertEqual(silent.status, 2, silent.output)
        XCTAssertTrue(silent.output.contains("timeout after 0.5 s: 2 of 2 frames unanswered"), silent.output)
    }
}
