import CFMData
import CFMDetector
import CFMTensor
import Foundation

extension FrameCodec {
    /// What the decoder accepts (the `input:` section of the config).
    public struct Limits: Sendable, Equatable {
        public var maxWidth: Int, maxHeight: Int
        /// Largest |X|, |Y| or |Z| in metres (after unit conversion): farther is no sensor's
        /// measurement, and far enough values overflow squared distances.
        public var maxCoordinateM: Double

        public init(maxWidth: Int = 4096, maxHeight: Int = 4096, maxCoordinateM: Double = 100) {
            (self.maxWidth, self.maxHeight, self.maxCoordinateM) = (maxWidth, maxHeight, maxCoordinateM)
        }

        public init(_ input: ServiceConfig.Input) {
            self.init(maxWidth: input.maxWidth, maxHeight: input.maxHeight, maxCoordinateM: input.maxCoordinateM)
        }

        /// The largest part a valid frame has, plus 4 KiB of slack: the header limit, or the
        /// widest colour (4 B/pixel) or geometry (12 B/pixel) layout at the maximum size. This is
        /// the input socket's ZMQ_MAXMSGSIZE — libzmq applies it to each part as it arrives and
        /// drops the connection of a peer that exceeds it, before the part is buffered.
        public var maxPartBytes: Int {
            let widest = max(RGBFormat.allCases.map(\.bytesPerPixel).max()!, XYZFormat.allCases.map(\.bytesPerPixel).max()!)
            return max(FrameCodec.maxHeaderBytes, maxWidth * maxHeight * widest) + 4096
        }
    }

    /// Decodes one frame message held in `[[UInt8]]` parts (tests, fuzzing, tools) into owned
    /// buffers (from `pool` when it has spares): every layout is converted into a copy, the
    /// parts are only read. Same checks, same errors, same values as decoding a
    /// `ReceivedMessage`.
    public static func decode(_ parts: [[UInt8]], limits: Limits = Limits(), buffers pool: FrameBufferPool? = nil) throws(FrameError) -> Frame {
        let kept = Array(parts.prefix(partCount))
        func withBuffers(_ i: Int, _ buffers: [UnsafeRawBufferPointer]) -> Result<Frame, FrameError> {
            guard i < kept.count else {
                return Result { () throws(FrameError) in
                    let header = try validated(parts: buffers, receivedParts: parts.count, limits: limits)
                    let cloud = try convertedGeometry(buffers[3], header: header, limits: limits, pool: pool)
                    return Frame(header, rgb: convertedColour(buffers[2], header: header, pool: pool), cloud: cloud)
                }
            }
            return kept[i].withUnsafeBytes { withBuffers(i + 1, buffers + [$0]) }
        }
        return try withBuffers(0, []).get()
    }

    /// Decodes a received frame message in its own bytes where the wire layout is the frame's:
    /// an `xyz_f32le` geometry part is validated and cleaned (holes → (0, 0, 0)) where it is
    /// and an `rgb8` colour part is taken as it is; the frame borrows them (`FramePixels`),
    /// taken out of `message` (`ReceivedMessage.takePart`), so nothing at the sensor's
    /// resolution is copied and the part is freed once the frame is done with. Other layouts
    /// (and a geometry part at an address not aligned for Float32, which only libzmq's small
    /// zero-copy parts can have) are converted into buffers from `pool` when it has spares.
    /// Same checks, same errors and same values as `decode(_:limits:buffers:)` of the parts.
    public static func decode(_ message: ReceivedMessage, limits: Limits = Limits(),
                              buffers pool: FrameBufferPool? = nil) throws(FrameError) -> Frame {
        let header = try message.withParts { (parts) throws(FrameError) in
            try validated(parts: parts, receivedParts: message.partCount, limits: limits)
        }
        let cloud: FramePixels<Float>
        if header.xyz == .xyz, message.withParts({ $0[3].isAlignedForFloat32 }) {
            let part = message.takePart(3)
            cloud = try geometry(header, limits: limits) { (geometry, limit) throws(SensorGeometry.FarPoint) in
                FramePixels(borrowing: part, values: try geometry.points(convertingInPlace: part.bytes, limit: limit))
            }
        } else {
            cloud = try message.withParts { (parts) throws(FrameError) in
                try convertedGeometry(parts[3], header: header, limits: limits, pool: pool)
            }
        }
        let rgb: FramePixels<UInt8>
        if header.rgb == .rgb8 {
            let part = message.takePart(2)
            rgb = FramePixels(borrowing: part, values: part.bytes.bindMemory(to: UInt8.self))
        } else {
            rgb = message.withParts { convertedColour($0[2], header: header, pool: pool) }
        }
        return Frame(header, rgb: rgb, cloud: cloud)
    }

    /// Checks a message before its pixels are read. Every size is checked before the bytes it
    /// bounds are read: part count and header length, then the header's fields and dimensions
    /// against `limits`, then each payload's byte count against what the formats imply (the
    /// payloads' values — holes, coordinate range — are checked while converting). `parts`
    /// holds at most the first `partCount` parts of a message of `receivedParts` parts.
    static func validated(parts: [UnsafeRawBufferPointer], receivedParts: Int, limits: Limits) throws(FrameError) -> FrameHeader {
        guard receivedParts == partCount, parts.count == partCount else {
            let id = parts.count >= 2 && parts[1].count <= maxHeaderBytes ? peekFrameId(parts[1]) : nil
            throw FrameError(.badParts, "expected \(partCount) parts (topic, header, rgb, xyz), got \(receivedParts)", frameId: id)
        }
        let header = try decodeHeader(parts[1], limits: limits)
        let pixels = header.width * header.height
        for (index, name, bytesPerPixel) in [(2, "RGB", header.rgb.bytesPerPixel), (3, "XYZ", header.xyz.bytesPerPixel)] {
            guard parts[index].count == pixels * bytesPerPixel else {
                let format = index == 2 ? header.rgb.rawValue : header.xyz.rawValue
                throw FrameError(.badSize, "\(name) part has \(parts[index].count) bytes, \(header.width)×\(header.height) \(format) is \(pixels * bytesPerPixel)",
                                 frameId: header.frameId)
            }
        }
        return header
    }

    /// A validated colour part → RGB bytes in one pass, into a buffer from `pool` when it has one.
    private static func convertedColour(_ bytes: UnsafeRawBufferPointer, header: FrameHeader, pool: FrameBufferPool?) -> FramePixels<UInt8> {
        let pixels = header.width * header.height
        var rgb = pool?.takeColour(count: 3 * pixels) ?? []
        header.rgb.rgbBytes(bytes, pixels: pixels, into: &rgb)
        return FramePixels(rgb)
    }

    /// A validated geometry part → XYZ converted in one pass (`SensorGeometry.points`), into a
    /// buffer from `pool` when it has one.
    private static func convertedGeometry(_ bytes: UnsafeRawBufferPointer, header: FrameHeader, limits: Limits,
                                          pool: FrameBufferPool?) throws(FrameError) -> FramePixels<Float> {
        var scalars = pool?.takeCloud(count: 3 * header.width * header.height) ?? []
        return try geometry(header, limits: limits) { (geometry, limit) throws(SensorGeometry.FarPoint) in
            try geometry.points(bytes, limit: limit, into: &scalars)
            return FramePixels(scalars)
        }
    }

    /// Header part → a validated header (size first, then JSON, then each field).
    static func decodeHeader(_ bytes: UnsafeRawBufferPointer, limits: Limits) throws(FrameError) -> FrameHeader {
        guard bytes.count <= maxHeaderBytes else {
            throw FrameError(.badHeader, "header is \(bytes.count) bytes; at most \(maxHeaderBytes) are accepted")
        }
        let data = Data(bytes)
        let header: FrameHeader
        do {
            header = try JSONDecoder().decode(FrameHeader.self, from: data)
        } catch {
            throw FrameError(.badHeader, headerProblem(error), frameId: peekFrameId(bytes))
        }
        func bad(_ message: String) -> FrameError { FrameError(.badHeader, message, frameId: WireText.echoedFrameId(header.frameId)) }
        guard header.v == version else { throw bad("protocol version \(header.v) is not supported (this daemon speaks v\(version))") }
        guard !header.frameId.isEmpty else { throw FrameError(.badHeader, "\"frame_id\" is empty") }
        guard header.frameId.utf8.count <= WireText.maxFrameIdBytes else {
            throw bad("\"frame_id\" is \(header.frameId.utf8.count) bytes; at most \(WireText.maxFrameIdBytes) are accepted")
        }
        guard WireText.isPrintable(header.frameId) else { throw bad("\"frame_id\" contains control characters") }
        guard header.width > 0, header.height > 0 else { throw bad("width and height must be positive, got \(header.width)×\(header.height)") }
        if header.xyz.isDepth {
            guard let k = header.intrinsics else { throw bad("\"xyz\" \(header.xyz.rawValue) needs \"intrinsics\" {fx, fy, cx, cy}") }
            guard k.isValid else { throw bad("\"intrinsics\" must be finite with fx, fy > 0") }
        }
        if let scale = header.depthScale {
            guard header.xyz == .depthU16 else { throw bad("\"depth_scale\" applies to depth_u16le only") }
            guard scale.isFinite, scale > 0 else { throw bad("\"depth_scale\" must be a positive number of metres per count") }
        }
        guard header.width <= limits.maxWidth, header.height <= limits.maxHeight else {
            throw FrameError(.tooLarge, "\(header.width)×\(header.height) exceeds the configured maximum \(limits.maxWidth)×\(limits.maxHeight)",
                             frameId: header.frameId)
        }
        return header
    }

    /// A one-line reason for a header JSON that does not decode — the field and what it must
    /// be, never the value received.
    private static func headerProblem(_ error: Error) -> String {
        func field(_ path: [CodingKey]) -> String {
            guard let first = path.first, let key = FrameHeader.CodingKeys(stringValue: first.stringValue) else {
                return "header is not a JSON object of protocol-v1 fields"
            }
            let name = path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
            return "\"\(name)\" must be \(FrameHeader.expectation(key))"
        }
        switch error as? DecodingError {
        case let .keyNotFound(key, context)?:
            if context.codingPath.isEmpty, let k = FrameHeader.CodingKeys(stringValue: key.stringValue) {
                return "missing \"\(key.stringValue)\" (\(FrameHeader.expectation(k)))"
            }
            return field(context.codingPath + [key])
        case let .typeMismatch(_, context)?, let .valueNotFound(_, context)?:
            return field(context.codingPath)
        case let .dataCorrupted(context)?:
            return context.codingPath.isEmpty ? "header is not valid JSON" : field(context.codingPath)
        default:
            return "header is not valid JSON"
        }
    }

    /// Best effort: the frame id of a header refused anyway (echoed escaped when invalid).
    /// Only called on a header within `maxHeaderBytes`.
    static func peekFrameId(_ header: UnsafeRawBufferPointer) -> String? {
        struct Probe: Decodable { var frame_id: String? }
        guard let id = (try? JSONDecoder().decode(Probe.self, from: Data(header)))?.frame_id, !id.isEmpty else { return nil }
        return WireText.echoedFrameId(id)
    }

    /// The geometry of `header` converted by `convert` — `SensorGeometry.points`, the file
    /// readers' conversion: holes become (0, 0, 0), depth is back-projected with the header's
    /// intrinsics — with the limit `limits.maxCoordinateM` in the cloud's unit (the header's
    /// `cloudUnit`): any finite coordinate beyond it refuses the frame.
    static func geometry<T>(_ header: FrameHeader, limits: Limits,
                            _ convert: (SensorGeometry, Double) throws(SensorGeometry.FarPoint) -> T) throws(FrameError) -> T {
        let unit = header.xyz.cloudUnit(declared: header.unit)
        let camera = header.intrinsics.map { DepthCamera(intrinsics: $0, depthScale: header.depthScale ?? FrameHeader.defaultDepthScale) }
        let geometry = SensorGeometry(format: header.xyz, width: header.width, height: header.height, camera: camera)
        do throws(SensorGeometry.FarPoint) {
            return try convert(geometry, limits.maxCoordinateM / Double(unit.metres))
        } catch {
            throw FrameError(.outOfRange, "XYZ pixel (row \(error.row), column \(error.column)) is \(Float(error.distance)) \(unit.rawValue) from the sensor; input.max_coordinate_m is \(limits.maxCoordinateM) m",
                             frameId: header.frameId)
        }
    }
}

private extension Frame {
    /// The frame of a validated `header` and its converted pixels.
    init(_ header: FrameHeader, rgb: FramePixels<UInt8>, cloud: FramePixels<Float>) {
        self.init(frameId: header.frameId, timestampNs: header.timestampNs, unit: header.xyz.cloudUnit(declared: header.unit),
                  height: header.height, width: header.width, rgb: rgb, cloud: cloud)
    }
}

private extension UnsafeRawBufferPointer {
    /// The bytes start at an address Float32 values may be read from in place.
    var isAlignedForFloat32: Bool { Int(bitPattern: baseAddress) % MemoryLayout<Float>.alignment == 0 }
}

/// Spare pixel buffers of preprocessed frames, for the decoder to reuse: in steady state a
/// frame in a layout the decoder converts (`bgr8`, `mono8`, depth, …) is decoded into the
/// buffers of one that was preprocessed, so no frame allocates (and page-faults in) its
/// pixels anew (frames in `rgb8` / `xyz_f32le` borrow the received message's bytes instead and
/// need none). The serve pipeline gives a frame's pixels back as soon as its preprocessing
/// returns (`FramePipeline.frameBuffers`). At most `capacity` spares of each kind are kept,
/// the newest; buffers of another frame size are dropped as they age out.
public final class FrameBufferPool: @unchecked Sendable {
    public let capacity: Int
    private let lock = NSLock()
    /// RGB bytes and XYZ values of frames, oldest first.
    private var colourSpares: [[UInt8]] = [], cloudSpares: [[Float]] = []

    public init(capacity: Int = 2) { self.capacity = capacity }

    /// A spare RGB buffer of `count` bytes, or nil.
    func takeColour(count: Int) -> [UInt8]? { lock.withLock { Self.take(count, from: &colourSpares) } }

    /// A spare XYZ buffer of `count` values, or nil.
    func takeCloud(count: Int) -> [Float]? { lock.withLock { Self.take(count, from: &cloudSpares) } }

    /// Takes `frame`'s pixels (the frame is left without any): owned buffers become spares,
    /// borrowed message parts are let go (freed when no other frame value holds them). A
    /// buffer still shared with another holder (a recorder) is copied before the decoder
    /// writes to it, as any shared array is.
    public func recycle(_ frame: inout Frame) {
        let (colour, cloud) = (frame.rgb.release(), frame.cloud.release())
        lock.withLock {
            Self.keep(colour, in: &colourSpares, capacity: capacity)
            Self.keep(cloud, in: &cloudSpares, capacity: capacity)
        }
    }

    private static func take<Element>(_ count: Int, from spares: inout [[Element]]) -> [Element]? {
        spares.lastIndex { $0.count == count }.map { spares.remove(at: $0) }
    }

    private static func keep<Element>(_ spare: [Element]?, in spares: inout [[Element]], capacity: Int) {
        guard let spare else { return }
        spares.append(spare)
        if spares.count > capacity { spares.removeFirst() }
    }
}
