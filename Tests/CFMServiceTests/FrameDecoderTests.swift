@testable import CFMService
import CFMData
import CFMTensor
import Foundation
import XCTest

/// The decoder's bounds, holes, coordinate range and input layouts.
final class FrameDecoderTests: XCTestCase {
    private func decodeError(_ parts: [[UInt8]], limits: FrameCodec.Limits = .init(),
                             file: StaticString = #filePath, line: UInt = #line) -> FrameError? {
        do {
            _ = try FrameCodec.decode(parts, limits: limits)
            XCTFail("decoded", file: file, line: line)
            return nil
        } catch {
            // Received (the pixels decoded in the message's own bytes), the refusal is the same.
            do {
                _ = try FrameCodec.decode(ReceivedMessage(copying: parts), limits: limits)
                XCTFail("decoded in the message's bytes", file: file, line: line)
            } catch let inPlace { XCTAssertEqual(inPlace, error, file: file, line: line) }
            return error
        }
    }

    private func header(_ fields: [String: Any]) -> [UInt8] { Array(try! JSONSerialization.data(withJSONObject: fields)) }

    // MARK: sizes before parsing

    func testHugeFrameIdOnTheWrongPartCountPathIsNeverParsedNorEchoed() {
        let good = FrameCodec.encode(makeFrame(id: "x", width: 8, height: 6))
        let huge = Array(#"{"v":1,"frame_id":""#.utf8) + [UInt8](repeating: 0x61, count: 10_000_000) + Array(#""}"#.utf8)
        let e = decodeError([good[0], huge, good[2]])
        XCTAssertEqual(e?.code, .badParts)
        XCTAssertNil(e?.frameId) // longer than the header limit: not parsed at all
        // Within the header limit but over 256 bytes: echoed escaped and truncated.
        let long = header(["v": 1, "frame_id": String(repeating: "é", count: 1000) + "\n"])
        let e2 = decodeError([good[0], long, good[2]])
        XCTAssertEqual(e2?.code, .badParts)
        XCTAssertLessThanOrEqual(e2?.frameId?.utf8.count ?? 999, WireText.maxFrameIdBytes)
        XCTAssertTrue(e2?.frameId?.hasSuffix("…") ?? false)
    }

    func testFrameIdIsAtMost256PrintableBytes() throws {
        let good = FrameCodec.encode(makeFrame(id: "x", width: 8, height: 6))
        func with(id: String) -> [[UInt8]] {
            var h = try! JSONSerialization.jsonObject(with: Data(good[1])) as! [String: Any]
            h["frame_id"] = id
            return [good[0], header(h), good[2], good[3]]
        }
        XCTAssertEqual(try FrameCodec.decode(with(id: String(repeating: "a", count: 256))).frameId.count, 256)
        XCTAssertEqual(try FrameCodec.decode(with(id: "línea-3/part\\7 ✓")).frameId, "línea-3/part\\7 ✓")
        let long = decodeError(with(id: String(repeating: "a", count: 257)))
        XCTAssertEqual(long?.code, .badHeader)
        XCTAssertEqual(long?.frameId?.utf8.count, 256)
        for (id, echoed) in [("x\nCRITICAL forged", "x\\nCRITICAL forged"), ("a\u{0}b\u{1B}[31m", "a\\u{0}b\\u{1B}[31m"),
                             ("p\u{2028}q\u{85}", "p\\u{2028}q\\u{85}")] {
            let e = decodeError(with(id: id))
            XCTAssertEqual(e?.code, .badHeader, id)
            XCTAssertEqual(e?.frameId, echoed)
            XCTAssertFalse(e?.message.contains(id) ?? true)
        }
    }

    func testHeaderErrorsNeverQuoteTheValueReceived() {
        let good = FrameCodec.encode(makeFrame(id: "x", width: 8, height: 6))
        let junk = "\n" + String(repeating: "z", count: 5000)
        for field in ["rgb", "xyz", "unit", "width", "v", "timestamp_ns"] {
            var h = try! JSONSerialization.jsonObject(with: Data(good[1])) as! [String: Any]
            h[field] = junk
            let e = decodeError([good[0], header(h), good[2], good[3]])
            XCTAssertEqual(e?.code, .badHeader, field)
            XCTAssertFalse(e?.message.contains("zzz") ?? true, e?.message ?? "")
            XCTAssertLessThan(e?.message.utf8.count ?? 0, 200)
        }
    }

    // MARK: holes and range

    func testNaNAndInfinityAreHolesLikeZeros() throws {
        var holes = makeFrame(id: "x", width: 8, height: 6)
        var nonFinite = holes
        for (p, values) in [(10, [Float.nan, 0.1, 0.5]), (11, [0.1, .infinity, 0.5]), (40, [0.1, 0.2, -.infinity]),
                            (47, [.nan, .nan, .nan]), (0, [1e30, .nan, 1e30])] {
            for c in 0..<3 { holes.cloud[3 * p + c] = 0; nonFinite.cloud[3 * p + c] = values[c] }
        }
        let a = try FrameCodec.decode(FrameCodec.encode(holes)), b = try FrameCodec.decode(FrameCodec.encode(nonFinite))
        XCTAssertEqual(Array(a.cloud), Array(holes.cloud))
        XCTAssertEqual(Array(b.cloud), Array(a.cloud))
    }

    func testCoordinatesBeyondTheRangeAreRefusedAfterUnitConversion() throws {
        let limits = FrameCodec.Limits(maxCoordinateM: 2)
        var mm = makeFrame(id: "x", width: 8, height: 6, unit: .mm)
        mm.cloud[3 * (4 * 8 + 5) + 2] = 1999 // 1.999 m
        XCTAssertNoThrow(try FrameCodec.decode(FrameCodec.encode(mm), limits: limits))
        mm.cloud[3 * (4 * 8 + 5)] = -2001
        let e = decodeError(FrameCodec.encode(mm), limits: limits)
        XCTAssertEqual(e?.code, .outOfRange)
        XCTAssertEqual(e?.frameId, "x")
        XCTAssertTrue(e?.message.contains("(row 4, column 5)") ?? false, e?.message ?? "")
        // The default range, 100 m: 3e38 and 1e20 (which crash squared-distance search) never pass.
        for far: Float in [3e38, 1e20, -100.5] {
            var m = makeFrame(id: "x", width: 8, height: 6)
            m.cloud[5] = far
            XCTAssertEqual(decodeError(FrameCodec.encode(m))?.code, .outOfRange)
        }
    }

    /// A frame large enough to be converted in parallel bands of rows, with a far point in
    /// each band: the one reported is the first in row-major order, as a serial pass finds it.
    func testTheFirstFarPixelIsReportedWhateverBandFindsIt() throws {
        let (w, h) = (512, 512)
        try XCTSkipIf(cpuCount < 2, "the bands need two workers")
        var frame = makeFrame(id: "x", width: w, height: h)
        for (row, column) in [(400, 3), (300, 500), (10, 20)] { frame.cloud[3 * (row * w + column) + 2] = 500 }
        XCTAssertTrue(decodeError(FrameCodec.encode(frame))?.message.contains("(row 10, column 20)") ?? false)
        frame.cloud[3 * (10 * w + 20) + 2] = 0.5
        XCTAssertTrue(decodeError(FrameCodec.encode(frame))?.message.contains("(row 300, column 500)") ?? false)
    }

    /// A frame decoded into a recycled frame's buffers is the frame decoded afresh, in every
    /// layout, and writes into those buffers (no new allocation).
    func testDecodingIntoRecycledBuffersReusesThemAndChangesNothing() throws {
        let pool = FrameBufferPool()
        let k = Intrinsics(fx: 50, fy: 52, cx: 15.5, cy: 11.5)
        for (rgb, xyz) in [(RGBFormat.rgb8, XYZFormat.xyz), (.bgra8, .depthF32), (.mono8, .depthU16)] {
            let sent = makeFrame(id: "x", width: 32, height: 24)
            let message = FrameCodec.encode(sent, rgb: rgb, xyz: xyz, intrinsics: xyz.isDepth ? k : nil)
            let fresh = try FrameCodec.decode(message)
            var previous = try FrameCodec.decode(FrameCodec.encode(makeFrame(id: "y", width: 32, height: 24)))
            let buffers = (previous.rgb.withUnsafeBufferPointer { $0.baseAddress }, previous.cloud.withUnsafeBufferPointer { $0.baseAddress })
            pool.recycle(&previous)
            let reused = try FrameCodec.decode(message, buffers: pool)
            XCTAssertEqual(reused.rgb, fresh.rgb, "\(rgb) \(xyz)")
            XCTAssertEqual(reused.cloud, fresh.cloud, "\(rgb) \(xyz)")
            XCTAssertEqual(reused.rgb.withUnsafeBufferPointer { $0.baseAddress }, buffers.0)
            XCTAssertEqual(reused.cloud.withUnsafeBufferPointer { $0.baseAddress }, buffers.1)
        }
        // A spare of another size is not used.
        var small = makeFrame(id: "s", width: 8, height: 6)
        pool.recycle(&small)
        XCTAssertEqual(try FrameCodec.decode(FrameCodec.encode(makeFrame(id: "x", width: 32, height: 24)), buffers: pool).cloud.count,
                       32 * 24 * 3)
    }

    // MARK: layouts

    func testColourOrdersDecodeToTheSameImage() throws {
        let frame = makeFrame(id: "c", width: 9, height: 7)
        let reference = try FrameCodec.decode(FrameCodec.encode(frame))
        for format in [RGBFormat.bgr8, .rgba8, .bgra8] {
            let parts = FrameCodec.encode(frame, rgb: format)
            XCTAssertEqual(parts[2].count, 9 * 7 * format.bytesPerPixel)
            let decoded = try FrameCodec.decode(parts)
            XCTAssertEqual(decoded.rgb, reference.rgb, format.rawValue)
            XCTAssertEqual(Array(decoded.cloud), Array(reference.cloud))
        }
        XCTAssertEqual(FrameCodec.encode(frame, rgb: .bgr8)[2][0..<3], [frame.rgb[2], frame.rgb[1], frame.rgb[0]])
        // mono8 is the grey image whose three channels are equal.
        var grey = frame
        grey.rgb = FramePixels((0..<(9 * 7)).flatMap { p in [UInt8](repeating: UInt8(p * 4), count: 3) })
        let mono = FrameCodec.encode(grey, rgb: .mono8)
        XCTAssertEqual(mono[2].count, 9 * 7)
        XCTAssertEqual(try FrameCodec.decode(mono).rgb, try FrameCodec.decode(FrameCodec.encode(grey)).rgb)
        // Expected sizes follow the layout.
        var short = FrameCodec.encode(frame, rgb: .bgra8)
        short[2].removeLast()
        XCTAssertEqual(decodeError(short)?.code, .badSize)
    }

    /// A depth image with holes (0, NaN, inf), as float32 in mm and as uint16 counts.
    private func depthFrame() -> (frame: Frame, intrinsics: Intrinsics) {
        let (w, h) = (11, 7)
        var xyz = [Float](repeating: 0, count: w * h * 3)
        for p in 0..<(w * h) { xyz[3 * p + 2] = 400 + Float(p % 13) * 1.25 + Float(p / w) * 0.5 } // mm
        xyz[3 * 5 + 2] = 0; xyz[3 * 20 + 2] = .nan; xyz[3 * 33 + 2] = .infinity
        let rgb = RGBImage(height: h, width: w, bytes: (0..<(w * h * 3)).map { UInt8($0 % 251) })
        return (Frame(frameId: "d", unit: .mm, rgb: rgb, cloud: Tensor(shape: [h, w, 3], scalars: xyz)),
                Intrinsics(fx: 525.5, fy: 530.25, cx: 5.3, cy: 3.1))
    }

    /// Back-projects the depth part with NumPy (float64, then float32), as an independent
    /// reference: returns the float32 XYZ bytes.
    private func numpyBackProjection(_ parts: [[UInt8]], dtype: String, scale: Double, k: Intrinsics, width: Int, height: Int) throws -> [Float] {
        let dir = TempDir()
        try Data(parts[3]).write(to: URL(fileURLWithPath: dir.path("depth.bin")))
        let script = """
        import numpy as np, sys
        z = np.fromfile(sys.argv[1], dtype="\(dtype)").astype(np.float64).reshape(\(height), \(width)) * \(scale)
        z[~np.isfinite(z)] = 0
        v, u = np.mgrid[0:\(height), 0:\(width)].astype(np.float64)
        xyz = np.stack([(u - \(k.cx)) * z / \(k.fx), (v - \(k.cy)) * z / \(k.fy), z], axis=-1)
        xyz[z == 0] = 0
        xyz.astype("<f4").tofile(sys.argv[2])
        """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, dir.path("depth.bin"), dir.path("xyz.bin")]
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: dir.path("xyz.bin")))
        return bytes.withUnsafeBytes { raw in (0..<(bytes.count / 4)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) } }
    }

    func testDepthFloatBackProjectionMatchesNumPy() throws {
        let (frame, k) = depthFrame()
        let parts = FrameCodec.encode(frame, xyz: .depthF32, intrinsics: k)
        XCTAssertEqual(parts[3].count, 11 * 7 * 4)
        let decoded = try FrameCodec.decode(parts)
        XCTAssertEqual(decoded.unit, .mm)
        let reference = try numpyBackProjection(parts, dtype: "<f4", scale: 1, k: k, width: 11, height: 7)
        XCTAssertEqual(decoded.cloud.count, reference.count)
        XCTAssertEqual(Array(decoded.cloud), reference)
        XCTAssertEqual(Array(decoded.cloud[3 * 20 ..< 3 * 20 + 3]), [0, 0, 0]) // NaN depth: a hole
        XCTAssertNotEqual(decoded.cloud[3 * 21], 0)
    }

    func testDepthUInt16BackProjectionMatchesNumPy() throws {
        let (frame, k) = depthFrame()
        for scale in [0.001, 0.0001] {
            let parts = FrameCodec.encode(frame, xyz: .depthU16, intrinsics: k, depthScale: scale)
            XCTAssertEqual(parts[3].count, 11 * 7 * 2)
            let decoded = try FrameCodec.decode(parts)
            XCTAssertEqual(decoded.unit, .m) // counts × depth_scale are metres
            let reference = try numpyBackProjection(parts, dtype: "<u2", scale: scale, k: k, width: 11, height: 7)
            XCTAssertEqual(Array(decoded.cloud), reference, "depth_scale \(scale)")
        }
        // The same part as float depth in mm and as uint16 mm counts: the same points, in metres.
        let viaU16 = try FrameCodec.decode(FrameCodec.encode(frame, xyz: .depthU16, intrinsics: k, depthScale: 0.00025))
        let viaF32 = try FrameCodec.decode(FrameCodec.encode(frame, xyz: .depthF32, intrinsics: k))
        for (a, b) in zip(Array(viaU16.cloud), Array(viaF32.cloud)) { XCTAssertEqual(a, b / 1000, accuracy: 2e-4) }
        // 65535 counts of 1 cm are 655 m: beyond the default range.
        var far = frame
        far.cloud[2] = 650_000
        XCTAssertEqual(decodeError(FrameCodec.encode(far, xyz: .depthU16, intrinsics: k, depthScale: 0.01))?.code, .outOfRange)
        var short = FrameCodec.encode(frame, xyz: .depthU16, intrinsics: k)
        short[3].append(0)
        XCTAssertEqual(decodeError(short)?.code, .badSize)
    }

    /// Seeded mutations of valid frames in every layout (bytes flipped, parts cut or grown,
    /// header fields replaced): the decoder returns a frame or a `FrameError` whose echoed id
    /// is at most 256 printable bytes, and a decoded frame has only finite, in-range points.
    func testMutatedFramesDecodeOrFailCleanly() {
        var random = SeededRandom(seed: 7)
        let (depth, k) = depthFrame()
        let seeds = [FrameCodec.encode(makeFrame(id: "m", width: 8, height: 6)),
                     FrameCodec.encode(depth, rgb: .bgra8, xyz: .depthU16, intrinsics: k),
                     FrameCodec.encode(depth, rgb: .mono8, xyz: .depthF32, intrinsics: k)]
        let replacements = [#""v":1"#, #""frame_id":"a\nb""#, #""width":-1"#, #""xyz":"depth_u16le""#, #""intrinsics":null"#,
                            #""depth_scale":1e308"#, #""unit":"mm""#, #""height":1e99"#, #""rgb":"mono8""#]
        var outcomes: [String: Int] = [:]
        for i in 0..<3000 {
            var parts = seeds[i % seeds.count]
            switch random.next() % 4 {
            case 0:
                let p = Int(random.next() % 4)
                if !parts[p].isEmpty { parts[p][Int(random.next() % UInt64(parts[p].count))] = UInt8(truncatingIfNeeded: random.next()) }
            case 1:
                let p = Int(random.next() % 4)
                parts[p] = Array(parts[p].prefix(Int(random.next() % UInt64(parts[p].count + 1))))
            case 2:
                var text = String(decoding: parts[1], as: UTF8.self)
                let field = replacements[Int(random.next() % UInt64(replacements.count))]
                text = text.replacingOccurrences(of: "{", with: "{" + field + ",", options: [], range: text.range(of: "{"))
                parts[1] = Array(text.utf8)
            default:
                parts.append([UInt8](repeating: 1, count: Int(random.next() % 3)))
            }
            do {
                let frame = try FrameCodec.decode(parts)
                XCTAssertTrue(frame.cloud.allSatisfy { $0.isFinite && abs(Double($0) * Double(frame.unit.metres)) <= 100 })
                outcomes["ok", default: 0] += 1
            } catch {
                outcomes[error.code.rawValue, default: 0] += 1
                if let id = error.frameId {
                    XCTAssertLessThanOrEqual(id.utf8.count, WireText.maxFrameIdBytes)
                    XCTAssertTrue(WireText.isPrintable(id), id)
                }
            }
        }
        XCTAssertGreaterThanOrEqual(outcomes.count, 5, "\(outcomes)")
    }

    func testMaximumPartSizeFollowsTheLimits() {
        XCTAssertEqual(FrameCodec.Limits(maxWidth: 4096, maxHeight: 4096).maxPartBytes, 4096 * 4096 * 12 + 4096)
        XCTAssertEqual(FrameCodec.Limits(maxWidth: 16, maxHeight: 16).maxPartBytes, FrameCodec.maxHeaderBytes + 4096)
    }
}
