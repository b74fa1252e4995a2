@testable import CFMService
import Foundation
import Logging
import XCTest

/// No log record can forge a line or grow without bound, on stderr or in journal fields.
final class LogEscapingTests: XCTestCase {
    private func event(_ message: String, _ metadata: Logger.Metadata) -> LogEvent {
        LogEvent(level: .warning, message: "\(message)", metadata: metadata, source: "t", file: #file, function: #function, line: #line)
    }

    /// What the handler writes to the real stderr (fd 2 redirected to a pipe meanwhile).
    private func stderrOutput(_ body: () -> Void) throws -> String {
        let pipe = Pipe(), saved = dup(2)
        dup2(pipe.fileHandleForWriting.fileDescriptor, 2)
        body()
        dup2(saved, 2)
        close(saved)
        try pipe.fileHandleForWriting.close()
        return String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    func testAForgedFrameIdYieldsExactlyOneLine() throws {
        let handler = JournalLogHandler(label: "t", destination: .stderr)
        let text = try stderrOutput {
            handler.log(event: event("error x\nCRITICAL forged", ["frame_id": "x\nCRITICAL forged", "k\r\nCRITICAL": "\u{1B}[2J"]))
        }
        XCTAssertEqual(text.filter { $0 == "\n" }.count, 1, text)
        XCTAssertTrue(text.hasSuffix("\n"))
        XCTAssertEqual(text, #"WARNING error x\nCRITICAL forged frame_id=x\nCRITICAL forged k\r\nCRITICAL=\u{1B}[2J"# + "\n")
    }

    func testJournalFieldsAreEscapedAndCapped() {
        let handler = JournalLogHandler(label: "t", destination: .journal)
        let fields = handler.fields(event(String(repeating: "m\n", count: 10_000), ["frame_id": "\(String(repeating: "é", count: 5000))"]))
        for field in fields {
            XCTAssertFalse(field.contains("\n"), field)
            XCTAssertFalse(field.unicodeScalars.contains { $0.properties.generalCategory == .control }, field)
        }
        let message = fields.first { $0.hasPrefix("MESSAGE=") }!, frameId = fields.first { $0.hasPrefix("FRAME_ID=") }!
        XCTAssertLessThanOrEqual(message.utf8.count, "MESSAGE=".utf8.count + JournalLogHandler.maxMessageBytes)
        XCTAssertGreaterThan(message.utf8.count, JournalLogHandler.maxMessageBytes - 8)
        XCTAssertTrue(message.hasSuffix(#"m\n…"#) || message.hasSuffix("m…"), String(message.suffix(10)))
        XCTAssertLessThanOrEqual(frameId.utf8.count, "FRAME_ID=".utf8.count + JournalLogHandler.maxValueBytes)
        XCTAssertTrue(frameId.hasSuffix("…"))
    }

    func testEscapingIsUnambiguousAndBounded() {
        XCTAssertEqual(WireText.escaped(#"a\nb"#, maxBytes: 100), #"a\\nb"#) // a literal backslash-n is not a newline
        XCTAssertEqual(WireText.escaped("a\nb", maxBytes: 100), #"a\nb"#)
        XCTAssertEqual(WireText.escaped("tab\there\u{7F}", maxBytes: 100), #"tab\there\u{7F}"#)
        XCTAssertEqual(WireText.escaped("abcdef", maxBytes: 6), "abcdef")
        XCTAssertEqual(WireText.escaped("abcdefg", maxBytes: 6), "abc…")
        XCTAssertEqual(WireText.escaped("ééééé", maxBytes: 8), "éé…") // never cuts a character
        XCTAssertLessThanOrEqual(WireText.escaped(String(repeating: "\u{0}", count: 1_000_000), maxBytes: 512).utf8.count, 512)
    }
}
