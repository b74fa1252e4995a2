@testable import CFMService
import Foundation
import Logging
import XCTest

/// Timestamps on stderr lines and MESSAGE_ID on lifecycle events.
final class LogFormatTests: XCTestCase {
    private func event(_ level: Logger.Level, _ message: String, _ metadata: Logger.Metadata = [:]) -> LogEvent {
        LogEvent(level: level, message: "\(message)", metadata: metadata, source: "t", file: #file, function: #function, line: #line)
    }

    func testStderrLinesStartWithAnISO8601UTCTimeInMilliseconds() {
        let handler = JournalLogHandler(label: "t", destination: .stderr)
        // 2026-01-31T12:34:56.789Z
        let date = Date(timeIntervalSince1970: 1_769_862_896.789_4)
        XCTAssertEqual(handler.stderrLine(event(.notice, "reject r-1", ["verdict": "reject"]), at: date),
                       "2026-01-31T12:34:56.789Z NOTICE reject r-1 verdict=reject\n")
        XCTAssertEqual(JournalLogHandler.timestamp(Date(timeIntervalSince1970: 0)), "1970-01-01T00:00:00.000Z")
        XCTAssertEqual(JournalLogHandler.timestamp(Date(timeIntervalSince1970: 951_782_400.5)), "2000-02-29T00:00:00.500Z")
        XCTAssertEqual(JournalLogHandler.timestamp(Date(timeIntervalSince1970: -0.25)), "1969-12-31T23:59:59.750Z")
        // Now, in UTC: the same second as Foundation's formatter says.
        let now = Date()
        let iso = ISO8601DateFormatter()
        iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        iso.timeZone = TimeZone(identifier: "UTC")
        XCTAssertEqual(JournalLogHandler.timestamp(now).prefix(19), iso.string(from: now).prefix(19))
    }

    func testLifecycleEventsCarryAFixedMessageId() {
        let ids = LifecycleEvent.allCases.map(\.messageId)
        XCTAssertEqual(Set(ids).count, 4)
        for id in ids { XCTAssertNotNil(id.range(of: "^[0-9a-f]{32}$", options: .regularExpression), id) }
        let handler = JournalLogHandler(label: "t", destination: .journal)
        let fields = handler.fields(event(.error, "reload refused", LifecycleEvent.reloadRefused.metadata.merging(["k": "v"]) { $1 }))
        XCTAssertTrue(fields.contains("MESSAGE_ID=1193bc269dea404fb458512bf764fcf9"), "\(fields)")
        XCTAssertTrue(fields.contains("PRIORITY=3"))
        XCTAssertTrue(fields.contains("K=v"))
        XCTAssertFalse(handler.fields(event(.info, "summary")).contains { $0.hasPrefix("MESSAGE_ID=") })
    }
}
