@testable import CFMService
import Foundation
import Logging
import XCTest

/// The daemon's input socket refuses oversized parts (ZMQ_MAXMSGSIZE from max_width ×
/// max_height) and keeps answering the next valid frame.
final class InputBoundsTests: XCTestCase {
    func testOversizedPartIsDroppedAtTheSocketAndServiceGoesOn() throws {
        let dir = TempDir()
        var config = ServiceConfig()
        config.input.endpoint = "tcp://127.0.0.1:*"
        config.input.pattern = .pull
        config.input.mode = .bind
        config.input.maxWidth = 16
        config.input.maxHeight = 16
        config.output.endpoint = dir.endpoint("out")
        config.logging.journald = .off
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let service = EdgeService(config: config, logger: logger) { _ in FrameStages(scoring: [slowScorer(0.001)]) }
        let thread = Thread { try? service.run() }
        thread.start()
        XCTAssertTrue(waitUntil(5) { service.inputEndpoint != nil })
        let limit = FrameCodec.Limits(config.input).maxPartBytes

        let oversized = try FakeSensor(input: service.inputEndpoint!, output: config.output.endpoint)
        usleep(200_000)
        var frame = FrameCodec.encode(makeFrame(id: "huge", width: 8, height: 6))
        frame[3] = [UInt8](repeating: 0, count: limit + 1)
        try oversized.send(frame)
        XCTAssertEqual(try oversized.results(1, timeout: 1).count, 0) // never delivered: no result, no copy

        let sensor = try FakeSensor(input: service.inputEndpoint!, output: config.output.endpoint)
        usleep(200_000)
        try sensor.send(FrameCodec.encode(makeFrame(id: "after", width: 8, height: 6)))
        let results = try sensor.results(1)
        XCTAssertEqual(results.map(\.frameId), ["after"])
        service.requestStop()
        XCTAssertTrue(waitUntil(10) { thread.isFinished })
    }

    /// A frame id carrying a newline and a fake level, end to end: refused, echoed escaped,
    /// and logged by the daemon's stderr handler as exactly one line.
    func testAForgedFrameIdCannotForgeALogLine() throws {
        let dir = TempDir()
        var config = ServiceConfig()
        config.input.endpoint = dir.endpoint("in")
        config.input.pattern = .pull
        config.input.mode = .bind
        config.output.endpoint = dir.endpoint("out")
        config.logging.journald = .off
        let logger = Logger(label: "test") { JournalLogHandler(label: $0, destination: .stderr) }
        let service = EdgeService(config: config, logger: logger) { _ in FrameStages(scoring: [slowScorer(0.001)]) }
        let pipe = Pipe(), saved = dup(2)
        dup2(pipe.fileHandleForWriting.fileDescriptor, 2)
        let thread = Thread { try? service.run() }
        thread.start()
        var results: [FrameResult] = []
        do {
            let sensor = try FakeSensor(input: config.input.endpoint, output: config.output.endpoint)
            usleep(300_000)
            var parts = FrameCodec.encode(makeFrame(id: "x", width: 8, height: 6))
            parts[1] = Array(String(decoding: parts[1], as: UTF8.self).replacingOccurrences(of: #""frame_id":"x""#, with: #""frame_id":"x\nCRITICAL forged""#).utf8)
            try sensor.send(parts)
            results = try sensor.results(1)
        }
        service.requestStop()
        _ = waitUntil(10) { thread.isFinished }
        dup2(saved, 2)
        close(saved)
        try pipe.fileHandleForWriting.close()
        let log = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(thread.isFinished)
        XCTAssertEqual(results.first?.error?.code, .badHeader)
        XCTAssertEqual(results.first?.frameId, #"x\nCRITICAL forged"#)
        let lines = log.split(separator: "\n")
        XCTAssertEqual(lines.filter { $0.contains("forged") }.count, 1, log)
        XCTAssertFalse(lines.contains { $0.hasPrefix("CRITICAL") }, log)
    }
}
