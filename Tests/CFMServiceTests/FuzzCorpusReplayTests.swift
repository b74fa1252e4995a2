import CFMService
import Foundation
import XCTest

/// Replays the committed seed corpora of the libFuzzer targets in `fuzz/` (and every crash
/// input later added to them) through the same checks the fuzzers make, so a regression
/// shows up in `swift test` without building the fuzzers.
final class FuzzCorpusReplayTests: XCTestCase {
    /// The files of fuzz/corpus/<target>/, sorted by name.
    private func corpus(_ target: String) throws -> [URL] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let directory = root.appendingPathComponent("fuzz/corpus/\(target)")
        let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        XCTAssertFalse(files.isEmpty, "no seeds in \(directory.path)")
        return files
    }

    func testFrameDecoderCorpus() throws {
        var accepted = 0
        for file in try corpus("decoder") {
            let bytes = [UInt8](try Data(contentsOf: file))
            XCTAssertNil(FuzzHarness.frameDecoderViolation(bytes), file.lastPathComponent)
            if (try? FrameCodec.decode(FuzzHarness.messageParts(bytes), limits: FuzzHarness.frameLimits)) != nil { accepted += 1 }
        }
        // The seeds cover both sides: valid frames and refusals.
        XCTAssertGreaterThan(accepted, 3)
    }

    func testConfigParserCorpus() throws {
        for file in try corpus("config") {
            XCTAssertNil(FuzzHarness.configParserViolation([UInt8](try Data(contentsOf: file))), file.lastPathComponent)
        }
    }

    func testMessagePartsRoundTrip() {
        let parts: [[UInt8]] = [Array("frame".utf8), Array(#"{"v":1}"#.utf8), [], [1, 2, 3]]
        XCTAssertEqual(FuzzHarness.messageParts(FuzzHarness.bytes(of: parts)), parts)
        XCTAssertEqual(FuzzHarness.messageParts([]), [[], [], [], []])
        XCTAssertEqual(FuzzHarness.messageParts([5, 0, 1]), [[1], [], [], []])  // a length past the end is cut short
    }
}
