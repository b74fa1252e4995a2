@testable import CFMService
import CFMData
import CFMDetector
import Foundation
import Logging
import XCTest

/// `ReplayJob` against a real daemon (`EdgeService`, test processor) over loopback ipc://.
final class ReplayJobTests: XCTestCase {
    /// Scores a frame by its mean depth; a cloud with no point off z = 0 has too few points.
    private static let depthScorer: FramePipeline.Processor = { frame in
        let z = stride(from: 2, to: frame.cloud.count, by: 3).map { frame.cloud[$0] }.filter { $0 != 0 }
        guard !z.isEmpty else { throw DetectorError.tooFewPoints(found: 0, needed: 1) }
        return Inference(score: z.reduce(0, +) / Float(z.count), threshold: 0, tier: "small", model: "depth",
                         stagesMs: [("depth", 0)], foregroundPoints: z.count)
    }

    func testEveryFrameGetsOneTypedResultAndMalformedFramesTheirCodes() throws {
        let dir = TempDir()
        let data = dir.url.appendingPathComponent("data")
        _ = try SyntheticDataset.generate(.init(size: 48, seed: 1, classes: [.cookie], trainCount: 1, validationCount: 1,
                                                testCountPerType: 1), to: data)
        let listener = ScopedNotifyListener(directory: dir)
        let config = serviceTestConfig(dir)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let service = EdgeService(config: config, logger: logger) { _ in FrameStages(scoring: [Self.depthScorer]) }
        let (thread, _) = startService(service)
        defer {
            service.requestStop()
            XCTAssertTrue(waitUntil(10) { thread.isFinished })
        }
        XCTAssertTrue(listener.receive(timeout: 5) { $0.contains { $0.hasPrefix("READY=1") } }.contains { $0.hasPrefix("READY=1") })

        let kinds = ReplayJob.MalformedKind.allCases
        var options = ReplayJob.Options(data: data.appendingPathComponent("cookie/test"))
        (options.endpoint, options.results, options.pattern, options.mode) = (config.input.endpoint, config.output.endpoint, .push, .connect)
        (options.rate, options.warmup, options.timeout) = (0, 0.3, 10)
        (options.frames, options.malformedEvery) = (2 * kinds.count + 1, 2)  // each kind once
        let result = try ReplayJob.run(options)

        XCTAssertEqual(result.sent, 2 * kinds.count + 1)
        XCTAssertEqual(result.missing, 0)
        XCTAssertTrue(result.unmatched.isEmpty, "\(result.unmatched)")
        XCTAssertEqual(Set(result.frames.map(\.frameId)).count, result.sent)
        for (i, frame) in result.frames.enumerated() {
            let r = try XCTUnwrap(frame.result, frame.frameId)
            if (i + 1) % 2 == 0 {
                let kind = kinds[((i + 1) / 2 - 1) % kinds.count]
                XCTAssertEqual(frame.malformed, kind)
                XCTAssertNil(frame.sample)
                XCTAssertEqual(r.verdict, .error, frame.frameId)
                XCTAssertEqual(r.error?.code, kind.expectedCode, frame.frameId)
                XCTAssertEqual(r.frameId, kind.carriesFrameId ? frame.frameId : nil)
            } else {
                XCTAssertNil(frame.malformed)
                XCTAssertNotNil(frame.sample)
                XCTAssertEqual(r.frameId, frame.frameId)
                XCTAssertEqual(r.verdict, .reject, frame.frameId)  // mean depth > threshold 0
                XCTAssertNotNil(frame.roundTripMs)
            }
        }
        XCTAssertEqual(result.malformedMismatches, [])
        XCTAssertEqual(result.verdicts[.reject], kinds.count + 1)
        XCTAssertEqual(result.verdicts[.error], kinds.count)
        XCTAssertEqual(result.errorCodes[.badHeader], 2)  // json and version
        XCTAssertEqual(result.outOfOrder, 0)

        // The JSON summary keeps `cfm replay --json`'s keys; a frame entry is [id, verdict, score].
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(result)) as? [String: Any])
        XCTAssertEqual(json["sent"] as? Int, result.sent)
        XCTAssertEqual(json["missing"] as? Int, 0)
        XCTAssertEqual((json["error_codes"] as? [String: Int])?["too_few_points"], 1)
        let entries = try XCTUnwrap(json["frames"] as? [[Any]])
        XCTAssertEqual(entries.count, result.sent)
        XCTAssertEqual(entries[1][1] as? String, "error")
        XCTAssertTrue(entries[1][2] is NSNull)
        XCTAssertNotNil(entries[0][2] as? Double)
    }
}
