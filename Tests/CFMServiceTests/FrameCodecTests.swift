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
        XCTAssertEqual([decoded.height, decoded.width, decoded.cloud.count], [24, 32, 24 * 32 * 3])
        XCTAssertEqual(Array(decoded.cloud), Array(frame.cloud))
    }

    func testOptionalHeaderFields() throws {
        let frame = makeFrame(id: "a", width: 2, height: 2)
        var parts = FrameCodec.encode(frame)
        parts[1] = Array(#"{"v":1,"frame_id":"a","width":2,"height":2}"#.utf8)
        let decoded = try FrameCodec.decode(parts)
        XCTAssertEqual(decoded.unit, .m)
        XCTAssertNil(decoded.timestampNs)
    }

    private func assertCode(_ parts: [[UInt8]], _ code: ErrorCode, frameId: String? = "x", limits: FrameCodec.Limits = .init(),
                            file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try FrameCodec.decode(parts, limits: limits), file: file, line: line) { error in
            let e = error as? FrameError
            XCTAssertEqual(e?.code, code, "\(error)", file: file, line: line)
            XCTAssertEqual(e?.frameId, frameId, file: file, line: line)
            XCTAssertFalse(e?.message.isEmpty ?? true, file: file, line: line)
            // Received (the pixels decoded in the message's own bytes), the refusal is the same.
            do {
                _ = try FrameCodec.decode(ReceivedMessage(copying: parts), limits: limits)
                XCTFail("decoded in the message's bytes", file: file, line: line)
            } catch { XCTAssertEqual(error as? FrameError, e, file: file, line: line) }
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
        assertCode(Array(good.prefix(3)), .badParts)
        assertCode(good + [[1]], .badParts)
        assertCode([[1]], .badParts, frameId: nil)
        // bad_header
        assertCode([good[0], Array("not json".utf8), good[2], good[3]], .badHeader, frameId: nil)
        assertCode([good[0], Array("[1,2]".utf8), good[2], good[3]], .badHeader, frameId: nil)
        assertCode(header(good) { $0["v"] = 2 }, .badHeader)
        assertCode(header(good) { $0["v"] = nil }, .badHeader)
        assertCode(header(good) { $0["v"] = true }, .badHeader)
        assertCode(header(good) { $0["frame_id"] = nil }, .badHeader, frameId: nil)
        assertCode(header(good) { $0["frame_id"] = 12 }, .badHeader, frameId: nil)
        assertCode(header(good) { $0["width"] = "8" }, .badHeader)
        assertCode(header(good) { $0["width"] = 8.5 }, .badHeader)
        assertCode(header(good) { $0["height"] = 0 }, .badHeader)
        assertCode(header(good) { $0["rgb"] = "bgr9" }, .badHeader)
        assertCode(header(good) { $0["xyz"] = "depth_f32le" }, .badHeader) // without intrinsics
        assertCode(header(good) { $0["xyz"] = "depth_u16le"; $0["intrinsics"] = ["fx": 0, "fy": 1, "cx": 0, "cy": 0] }, .badHeader)
        assertCode(header(good) { $0["depth_scale"] = 0.001 }, .badHeader) // xyz_f32le has no depth scale
        assertCode(header(good) { $0["xyz"] = "xyz_f64le" }, .badHeader)
        assertCode(header(good) { $0["unit"] = "inch" }, .badHeader)
        assertCode(header(good) { $0["timestamp_ns"] = "now" }, .badHeader)
        assertCode(header(good) { $0["padding"] = String(repeating: " ", count: 70_000) }, .badHeader, frameId: nil)
        // too_large (checked before sizes: no allocation for absurd headers)
        assertCode(header(good) { $0["width"] = 100_000 }, .tooLarge)
        assertCode(good, .tooLarge, limits: .init(maxWidth: 4, maxHeight: 100))
        assertCode(good, .tooLarge, limits: .init(maxWidth: 100, maxHeight: 5))
        // bad_size
        var p = good; p[2].removeLast()
        assertCode(p, .badSize)
        p = good; p[3].append(0)
        assertCode(p, .badSize)
        assertCode(header(good) { $0["width"] = 9 }, .badSize)
        // out_of_range (NaN and ±inf are holes: FrameDecoderTests)
        for bad: Float in [1e20, -3e38, 100.001] {
            var frame = makeFrame(id: "x", width: 8, height: 6)
            frame.cloud[77] = bad
            assertCode(FrameCodec.encode(frame), .outOfRange)
        }
    }

    func testDetectorErrorsKeepTheirCodes() {
        for error in [DetectorError.tooFewPoints(found: 3, needed: 128), .nonFinite("x"), .badInput("x")] {
            XCTAssertEqual(FrameError.from(error, frameId: "f").code.rawValue, error.code)
        }
        XCTAssertEqual(FrameError.from(CocoaError(.fileNoSuchFile), frameId: "f").code, .internal)
        XCTAssertEqual(FrameError.from(FrameError(.badSize, "m"), frameId: "f").frameId, "f")
    }

    func testResultCarriesEveryFieldOfTheProtocol() throws {
        let r = FrameResult(frameId: "p1", verdict: .reject, score: 3.5, threshold: 2, tier: "small", model: "m@1",
                            latencyMs: 12.3456, stagesMs: [("preprocess", 1.5), ("extract2d", 7.25)], foregroundPoints: 1234,
                            receivedNs: 100, publishedNs: 200, map: [1, 2, 3],
                            regions: [DefectRegion(box: [3, 4, 30, 40], area: 900, peak: 3.5)], regionsTotal: 2)
        let parts = FrameCodec.encode(r, topicPrefix: "result", includeMap: true)
        XCTAssertEqual(parts.count, 3)
        XCTAssertEqual(String(decoding: parts[0], as: UTF8.self), "result.reject")
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(parts[1])) as? [String: Any])
        XCTAssertEqual(Set(json.keys), ["v", "seq", "frame_id", "verdict", "score", "threshold", "tier", "model", "latency_ms", "stages_ms",
                                        "foreground_points", "regions", "regions_total", "error", "received_ns", "published_ns"])
        XCTAssertTrue(json["error"] is NSNull)
        XCTAssertEqual((json["regions"] as? [[String: Any]])?.first?["box"] as? [Int], [3, 4, 30, 40])
        XCTAssertTrue(json["seq"] is NSNull)
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
        XCTAssertEqual(back.regions, [DefectRegion(box: [3, 4, 30, 40], area: 900, peak: 3.5)])
        XCTAssertEqual(back.regionsTotal, 2)
        XCTAssertEqual(back.receivedNs, 100)
        XCTAssertEqual(back.publishedNs, 200)
        XCTAssertEqual(FrameCodec.encode(r, includeMap: false).count, 2)
    }

    func testErrorResult() throws {
        var r = FrameResult(frameId: nil, verdict: .error, error: FrameError(.badParts, "expected 4 parts"))
        r.sequence = 7
        let parts = FrameCodec.encode(r, topicPrefix: "line1", includeMap: true)
        XCTAssertEqual(parts.count, 2)
        XCTAssertEqual(String(decoding: parts[0], as: UTF8.self), "line1.error")
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(parts[1])) as? [String: Any])
        XCTAssertTrue(json["frame_id"] is NSNull)
        XCTAssertTrue(json["score"] is NSNull)
        XCTAssertTrue(json["regions"] is NSNull)
        XCTAssertEqual((json["error"] as? [String: Any])?["code"] as? String, "bad_parts")
        XCTAssertEqual(json["seq"] as? Int, 7)
        XCTAssertEqual(try FrameCodec.decodeResult(parts).error?.code, .badParts)
        XCTAssertEqual(try FrameCodec.decodeResult(parts).sequence, 7)
    }

    func testVerdictIsStrictlyAbove() {
        XCTAssertEqual(Inference(score: 2, threshold: 2, tier: "t", model: "m").verdict, .pass)
        XCTAssertEqual(Inference(score: 2.0001, threshold: 2, tier: "t", model: "m").verdict, .reject)
    }
}
