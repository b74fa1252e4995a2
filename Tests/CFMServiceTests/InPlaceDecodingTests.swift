@testable import CFMService
import CFMData
import CFMDetector
import CFMTensor
import XCTest

/// Decoding a received message in its own bytes (what `cfm serve` does: the frame borrows the
/// `rgb8` and `xyz_f32le` parts, converted where they are) against decoding the same bytes
/// into buffers of the frame's own.
final class InPlaceDecodingTests: XCTestCase {
    /// A 96×64 part on a table (`makeFrame`) in `unit`, with holes of every kind.
    private func part(unit: LengthUnit) -> Frame {
        var frame = makeFrame(id: "part", width: 96, height: 64, unit: unit)
        for (p, values) in [(5, [Float.nan, 0.1, 0.5]), (700, [0.1, .infinity, 0.5]), (3000, [0.1, 0.2, -.infinity]),
                            (3100, [0, 0, 0]), (3101, [.nan, .nan, .nan])] {
            for c in 0..<3 { frame.cloud[3 * p + c] = values[c] * (unit == .mm ? 1000 : 1) }
        }
        return frame
    }

    /// The first index where `a` and `b` differ in bits (or the shorter length), nil when they agree.
    private func firstDifference(_ a: some Collection<Float>, _ b: some Collection<Float>) -> Int? {
        zip(a, b).enumerated().first { $0.element.0.bitPattern != $0.element.1.bitPattern }?.offset
            ?? (a.count == b.count ? nil : min(a.count, b.count))
    }

    /// `frame` preprocessed as the serve pipeline's preprocessing stage does (its cloud edited in place).
    private func preprocessed(_ frame: inout Frame) throws -> PreprocessedFrame {
        var (times, subStages) = (StageTimes(), StageTimes())
        return try DetectorProcessing.prepare(&frame, preprocessor: Preprocessor(), workspace: PreprocessWorkspace(),
                                              times: &times, subStages: &subStages)
    }

    /// The model input of a frame decoded and preprocessed in the message's bytes is bit for
    /// bit that of the frame decoded into buffers of its own, in metres and in millimetres,
    /// with holes; and so is the cloud preprocessing leaves (metres, background removed).
    func testTheBorrowedFramePreprocessesBitForBitAsTheCopiedOne() throws {
        for unit in [LengthUnit.m, .mm] {
            let message = FrameCodec.encode(part(unit: unit))
            var borrowed = try FrameCodec.decode(ReceivedMessage(copying: message))
            var copied = try FrameCodec.decode(message)
            XCTAssertTrue(borrowed.rgb.isBorrowed && borrowed.cloud.isBorrowed)
            XCTAssertFalse(copied.rgb.isBorrowed || copied.cloud.isBorrowed)
            XCTAssertNil(firstDifference(borrowed.cloud, copied.cloud), "\(unit): decoded")

            let a = try preprocessed(&borrowed), b = try preprocessed(&copied)
            XCTAssertNotNil(a.background?.plane, "background removal ran")
            XCTAssertNil(firstDifference(a.input.xyz.scalars, b.input.xyz.scalars), "\(unit): xyz input")
            XCTAssertNil(firstDifference(a.input.rgb.scalars, b.input.rgb.scalars), "\(unit): rgb input")
            XCTAssertEqual(a.background, b.background, "\(unit)")
            XCTAssertEqual(a.foregroundPoints, b.foregroundPoints, "\(unit)")
            XCTAssertTrue(borrowed.cloud.isBorrowed, "edited in the message's bytes")
            XCTAssertNil(firstDifference(borrowed.cloud, copied.cloud), "\(unit): preprocessed")
        }
    }

    /// The frame takes the parts it borrows out of the message (decoding it again is refused,
    /// never converted twice); layouts that need converting are decoded into buffers of the
    /// frame's own and leave their part in the message.
    func testTheMessageGivesTheFrameOnlyThePartsItsLayoutsKeep() throws {
        let frame = makeFrame(id: "x", width: 16, height: 8)
        let k = Intrinsics(fx: 20, fy: 20, cx: 7.5, cy: 3.5)
        for (rgb, xyz) in [(RGBFormat.rgb8, XYZFormat.xyz), (.bgr8, .xyz), (.rgb8, .depthU16), (.mono8, .depthF32)] {
            let parts = FrameCodec.encode(frame, rgb: rgb, xyz: xyz, intrinsics: xyz.isDepth ? k : nil)
            let message = ReceivedMessage(copying: parts)
            let decoded = try FrameCodec.decode(message)
            let copy = try FrameCodec.decode(parts)
            XCTAssertEqual(decoded.rgb, copy.rgb, "\(rgb) \(xyz)")
            XCTAssertNil(firstDifference(decoded.cloud, copy.cloud), "\(rgb) \(xyz)")
            XCTAssertEqual([decoded.rgb.isBorrowed, decoded.cloud.isBorrowed], [rgb == .rgb8, xyz == .xyz], "\(rgb) \(xyz)")
            XCTAssertEqual([message.size(of: 2), message.size(of: 3)],
                           [rgb == .rgb8 ? 0 : parts[2].count, xyz == .xyz ? 0 : parts[3].count], "\(rgb) \(xyz)")
            if rgb == .rgb8 || xyz == .xyz {
                XCTAssertThrowsError(try FrameCodec.decode(message)) { XCTAssertEqual(($0 as? FrameError)?.code, .badSize) }
            }
        }
    }

    /// A copy of a borrowed frame shares the message's bytes until one of them is written:
    /// then the writer copies, and the other stays as received.
    func testWritingASharedBorrowedFrameCopiesIt() throws {
        let message = FrameCodec.encode(makeFrame(id: "x", width: 16, height: 8))
        var edited = try FrameCodec.decode(ReceivedMessage(copying: message))
        let kept = edited
        let address = kept.cloud.withUnsafeBufferPointer { $0.baseAddress }
        edited.cloud[0] = 42
        XCTAssertFalse(edited.cloud.isBorrowed)
        XCTAssertTrue(kept.cloud.isBorrowed)
        XCTAssertEqual(kept.cloud.withUnsafeBufferPointer { $0.baseAddress }, address)
        XCTAssertEqual(Array(kept.cloud), Array(try FrameCodec.decode(message).cloud))
        XCTAssertEqual(edited.cloud[0], 42)
        // Alone, a borrowed frame is written where it is.
        var alone = try FrameCodec.decode(ReceivedMessage(copying: message))
        let before = alone.cloud.withUnsafeBufferPointer { $0.baseAddress }
        alone.cloud[0] = 42
        XCTAssertTrue(alone.cloud.isBorrowed)
        XCTAssertEqual(alone.cloud.withUnsafeBufferPointer { $0.baseAddress }, before)
    }

    /// Recycling a borrowed frame leaves no spare (the message part is let go); an owned
    /// frame's buffers become spares the next conversion uses.
    func testRecyclingKeepsOnlyOwnedBuffers() throws {
        let pool = FrameBufferPool()
        let frame = makeFrame(id: "x", width: 16, height: 8)
        var borrowed = try FrameCodec.decode(ReceivedMessage(copying: FrameCodec.encode(frame)))
        pool.recycle(&borrowed)
        XCTAssertEqual([borrowed.rgb.count, borrowed.cloud.count], [0, 0])
        XCTAssertNil(pool.takeColour(count: 3 * 16 * 8))
        XCTAssertNil(pool.takeCloud(count: 3 * 16 * 8))
        var owned = try FrameCodec.decode(FrameCodec.encode(frame, rgb: .bgr8))
        pool.recycle(&owned)
        XCTAssertNotNil(pool.takeColour(count: 3 * 16 * 8))
        XCTAssertNotNil(pool.takeCloud(count: 3 * 16 * 8))
    }

    /// Over real libzmq (TCP loopback): a received frame's parts are libzmq's own buffers,
    /// aligned for Float32, and the frame is decoded in them — the same frame as decoded from
    /// the sent bytes.
    func testAFrameReceivedOverLoopbackIsDecodedInItsOwnBytes() throws {
        let context = try ZMQContext()
        let pull = try ZMQSocket(context, .pull)
        try pull.bind("tcp://127.0.0.1:*")
        let push = try ZMQSocket(context, .push)
        try push.connect(try pull.lastEndpoint)
        defer { push.close(); pull.close() }
        let sent = FrameCodec.encode(makeFrame(id: "net", width: 64, height: 48))
        XCTAssertTrue(try push.send(sent))
        XCTAssertTrue(try pull.pollIn(milliseconds: 5000))
        let message = try XCTUnwrap(try pull.receiveMessage(keepingAtMost: FrameCodec.partCount))
        let decoded = try FrameCodec.decode(message)
        XCTAssertTrue(decoded.rgb.isBorrowed && decoded.cloud.isBorrowed)
        let reference = try FrameCodec.decode(sent)
        XCTAssertEqual(decoded.rgb, reference.rgb)
        XCTAssertNil(firstDifference(decoded.cloud, reference.cloud))
    }
}
