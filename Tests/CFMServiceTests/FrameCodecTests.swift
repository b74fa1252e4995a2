@testable import CFMService
import CFMData
import CFMDetector
import Foundation
import XCTest

final class FrameCodecTests: XCTestCase {
    func testFrameRoundTrip() throws {
        let frame = makeFrame(id: "part-17", unit: .mm)
        let parts = FrameCodec.encode(frame, topic: "frame.cam1")
        XCTAssertEqual(parts.count, 4)
        XCTAssertEqual(String(decoding: parts[0], as: UTF8.self), "frame.cam1")
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(parts[1])) as? [String: Any])
        XCTAssertEqual(header["v"] as? Int, 1)
        XCTAssertEqual(header["rgb"] as? String, "rgb8")
        XCTAssertEqual(header["xyz"] as? String, "xyz_f32le")
        XCTAssertEqual(header["unit"] as? String, "mm")
        let decoded = try FrameCodec.decode(parts)
        XCTAssertEqual(decoded.frameId, "part-17")
        XCTAssertEqual(decoded.timestampNs, 42)
        XCTAssertEqual(decoded.unit, .mm)
        XCTAssertEqual(decoded.rgb, frame.rgb)
        XCTAssertEqual(decoded.cloud.shape, [24, 32, 3])
        XCTAssertEqual(decoded.cloud.scalars, frame.cloud.scalars)
    }

    func testOptionalHeaderFields() throws {
        let frame = makeFrame(id: "a", width: 2, height: 2)
        var parts = FrameCodec.encode(frame)
        parts[1] = Array(#"{"v":1,"frame_id":"a","width":2,"height":2}"#.utf8)
        let decoded = try FrameCodec.decode(parts)
        XCTAssertEqual(decoded.unit, .m)
        XCTAssertNil(decoded.timestampNs)
    }

    private func assertCode(_ parts: [[UInt8]], _ code: String, frameId: String? = "x", limits: FrameCodec.Limits = .init(),
                            file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try FrameCodec.decode(parts, limits: limits), file: file, line: line) { error in
            let e = error as? FrameError
            XCTAssertEqual(e?.code, code, "\(error)", file: file, line: line)
            XCTAssertEqual(e?.frameId, frameId, file: file, line: line)
            XCTAssertFalse(e?.message.isEmpty ?? true, file: file, line: line)
        }
    }

    private func header(_ parts: [[UInt8]], _ edit: (inout [String: Any]) -> Void) -> [[UInt8]] {
        var p = parts
        var h = try! JSONSerialization.jsonObject(with: Data(p[1])) as! [String: Any]
        edit(&h)
        p[1] = Array(try! JSONSerialization.data(withJSONObject: h))
        return p
    }

    func testEveryCodecErrorCode() {
        let good = FrameCodec.encode(makeFrame(id: "x", width: 8, height: 6))
        // bad_parts
        assertCode(Array(good.prefix(3)), "bad_parts")
        assertCode(good + [[1]], "bad_parts")
        assertCode([[1]], "bad_parts", frameId: nil)
        // bad_header
        assertCode([good[0], Array("not json".utf8), good[2], good[3]], "bad_header", frameId: nil)
        assertCode([good[0], Array("[1,2]".utf8), good[2], good[3]], "bad_header", frameId: nil)
        assertCode(header(good) { $0["v"] = 2 }, "bad_header")
        assertCode(header(good) { $0["v"] = nil }, "bad_header")
        assertCode(header(good) { $0["v"] = true }, "bad_header")
        assertCode(header(good) { $0["frame_id"] = nil }, "bad_header", frameId: nil)
        assertCode(header(good) { $0["frame_id"] = 12 }, "bad_header", frameId: nil)
        assertCode(header(good) { $0["width"] = "8" }, "bad_header")
        assertCode(header(good) { $0["width"] = 8.5 }, "bad_header")
        assertCode(header(good) { $0["height"] = 0 }, "bad_header")
        assertCode(header(good) { $0["rgb"] = "bgr8" }, "bad_header")
        assertCode(header(good) { $0["xyz"] = "xyz_f64le" }, "bad_header")
        assertCode(header(good) { $0["unit"] = "inch" }, "bad_header")
        assertCode(header(good) { $0["timestamp_ns"] = "now" }, "bad_header")
        assertCode(header(good) { $0["padding"] = String(repeating: " ", count: 70_000) }, "bad_header", frameId: nil)
        // too_large (checked before sizes: no allocation for absurd headers)
        assertCode(header(good) { $0["width"] = 100_000 }, "too_large")
        assertCode(good, "too_large", limits: .init(maxWidth: 4, maxHeight: 100))
        assertCode(good, "too_large", limits: .init(maxWidth: 100, maxHeight: 5))
        // bad_size
        var p = good; p[2].removeLast()
        assertCode(p, "bad_size")
        p = good; p[3].append(0)
        assertCode(p, "bad_size")
        assertCode(header(good) { $0["width"] = 9 }, "bad_size")
        // non_finite
        for bad in [Float.nan, .infinity, -.infinity] {
            var frame = makeFrame(id: "x", width: 8, height: 6)
            frame.cloud.scalars[77] = bad
            assertCode(FrameCodec.encode(frame), "non_finite")
        }
    }

    func testDetectorErrorsKeepTheirCodes() {
        XCTAssertEqual(FrameError.from(DetectorError.tooFewPoints(found: 3, needed: 128), frameId: "f").code, "too_few_points")
        XCTAssertEqual(FrameError.from(DetectorError.nonFinite("x"), frameId: "f").code, "non_finite")
        XCTAssertEqual(FrameError.from(DetectorError.badInput("x"), frameId: "f").code, "bad_input")
        XCTAssertEqual(FrameError.from(CocoaError(.fileNoSuchFile), frameId: "f").code, "internal")
        XCTAssertEqual(FrameError.from(FrameError("bad_size", "m"), frameId: "f").frameId, "f")
    }

    func testResultCarriesEveryFieldOfTheProtocol() throws {
        let r = FrameResult(frameId: "p1", verdict: .reject, score: 3.5, threshold: 2, tier: "small", model: "m@1",
                            latencyMs: 12.3456, stagesMs: [("preprocess", 1.5), ("extract2d", 7.25)], foregroundPoints: 1234,
                            receivedNs: 100, publishedNs: 200, map: [1, 2, 3])
        let parts = FrameCodec.encode(r, topicPrefix: "result", includeMap: true)
        XCTAssertEqual(parts.count, 3)
        XCTAssertEqual(String(decoding: parts[0], as: UTF8.self), "result.reject")
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(parts[1])) as? [String: Any])
        XCTAssertEqual(Set(json.keys), ["v", "frame_id", "verdict", "score", "threshold", "tier", "model", "latency_ms", "stages_ms",
                                        "foreground_points", "error", "received_ns", "published_ns", "seq"])
        XCTAssertTrue(json["error"] is NSNull)
        XCTAssertEqual((json["stages_ms"] as? [String: Any])?["extract2d"] as? Double, 7.25)
        XCTAssertEqual(parts[2].count, 12)
        let back = try FrameCodec.decodeResult(parts)
        XCTAssertEqual(back.frameId, "p1")
        XCTAssertEqual(back.verdict, .reject)
        XCTAssertEqual(back.score, 3.5)
        XCTAssertEqual(back.threshold, 2)
        XCTAssertEqual(back.foregroundPoints, 1234)
        XCTAssertEqual(back.latencyMs, 12.346, accuracy: 1e-9)
        XCTAssertEqual(back.map, [1, 2, 3])
        XCTAssertEqual(back.receivedNs, 100)
        XCTAssertEqual(back.publishedNs, 200)
        XCTAssertEqual(FrameCodec.encode(r, includeMap: false).count, 2)
    }

    func testErrorResult() throws {
        let r = FrameResult(frameId: nil, verdict: .error, error: FrameError("bad_parts", "expected 4 parts"))
        let parts = FrameCodec.encode(r, topicPrefix: "line1", includeMap: true)
        XCTAssertEqual(parts.count, 2)
        XCTAssertEqual(String(decoding: parts[0], as: UTF8.self), "line1.error")
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(parts[1])) as? [String: Any])
        XCTAssertTrue(json["frame_id"] is NSNull)
        XCTAssertTrue(json["score"] is NSNull)
        XCTAssertEqual((json["error"] as? [String: Any])?["code"] as? String, "bad_parts")
        XCTAssertEqual(try FrameCodec.decodeResult(parts).error?.code, "bad_parts")
    }

    func testVerdictIsStrictlyAbove() {
        XCTAssertEqual(Inference(score: 2, threshold: 2, tier: "t", model: "m").verdict, .pass)
        XCTAssertEqual(Inference(score: 2.0001, threshold: 2, tier: "t", model: "m").verdict, .reject)
    }
}
