@testable import CFMService
import CFMData
import Foundation
import XCTest

/// docs/result.schema.json validates real encoded results (python3's `jsonschema`), and
/// refuses results that break the protocol — the validation can fail.
final class ResultSchemaTests: XCTestCase {
    private let schema = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/result.schema.json")

    /// Validates each JSON document; returns one line per document, "ok" or the first problem.
    private func validate(_ documents: [[UInt8]]) throws -> [String] {
        let dir = TempDir()
        let file = URL(fileURLWithPath: dir.path("results.jsonl"))
        try Data(documents.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "\n").utf8).write(to: file)
        let script = """
        import json, sys, jsonschema
        schema = json.load(open(sys.argv[1]))
        jsonschema.Draft202012Validator.check_schema(schema)
        v = jsonschema.Draft202012Validator(schema)
        for line in open(sys.argv[2]):
            errors = sorted(v.iter_errors(json.loads(line)), key=lambda e: e.path)
            print("ok" if not errors else errors[0].message.replace("\\n", " "))
        """
        let process = Process(), out = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, schema.path, file.path]
        process.standardOutput = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, text)
        return text.split(separator: "\n").map(String.init)
    }

    private func results() -> [FrameResult] {
        var scored = FrameResult(frameId: "p1", verdict: .reject, score: 3.5, threshold: 2, tier: "small", model: "m/cookie@abc",
                                 latencyMs: 12.3456, stagesMs: [("preprocess", 1.5), ("extract2d", 7.25)], foregroundPoints: 1234,
                                 receivedNs: 100, publishedNs: 200, map: [1, 2, 3],
                                 regions: [DefectRegion(box: [10, 20, 74, 52], area: 1536, peak: 3.5),
                                           DefectRegion(box: [0, 0, 4, 4], area: 16, peak: 2.25)], regionsTotal: 3)
        scored.sequence = 41
        var passed = scored
        (passed.verdict, passed.score, passed.sequence, passed.regions, passed.regionsTotal) = (.pass, 0.25, nil, [], 0)
        var all = [scored, passed]
        for code in ErrorCode.allCases {
            var r = FrameResult(frameId: code == .badParts ? nil : "f-\(code.rawValue)", verdict: code == .dropped ? .dropped : .error,
                                error: FrameError(code, "a reason"), receivedNs: 5, publishedNs: 6)
            r.sequence = UInt64(all.count)
            all.append(r)
        }
        return all
    }

    func testEncodedResultsValidate() throws {
        let documents = results().map { FrameCodec.encode($0, includeMap: true)[1] }
        XCTAssertEqual(try validate(documents), Array(repeating: "ok", count: documents.count))
    }

    func testTheSchemaRefusesBrokenResults() throws {
        func edited(_ r: FrameResult, _ edit: (inout [String: Any]) -> Void) -> [UInt8] {
            var json = try! JSONSerialization.jsonObject(with: Data(FrameCodec.encode(r)[1])) as! [String: Any]
            edit(&json)
            return Array(try! JSONSerialization.data(withJSONObject: json))
        }
        let (scored, error) = (results()[0], results()[3])
        let broken = [
            edited(scored) { $0["seq"] = nil },                                          // a key missing
            edited(scored) { $0["extra"] = 1 },                                          // an unknown key
            edited(error) { $0["error"] = ["code": "bogus", "message": "m"] },           // a code not in the enum
            edited(scored) { $0["score"] = NSNull() },                                   // a reject without a score
            edited(scored) { $0["verdict"] = "maybe" },
            edited(scored) { $0["regions"] = [] as [Any] },                              // a reject without a region
            edited(scored) { $0["regions"] = [["box": [1, 2, 3], "area": 4, "peak": 1.5]] }, // a box of three numbers
            edited(error) { $0["regions"] = [] as [Any] },                               // an error with regions
        ]
        let verdicts = try validate(broken)
        XCTAssertEqual(verdicts.count, broken.count)
        XCTAssertFalse(verdicts.contains("ok"), "\(verdicts)")
    }
}
