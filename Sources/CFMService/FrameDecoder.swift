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

    /// Decodes one frame message held in `[[UInt8]]` parts (tests, fuzzing, tools); the daemon
    /// decodes `ReceivedMessage`s in place. Same checks, same errors.
    public static func decode(_ parts: [[UInt8]], limits: Limits = Limits(), buffers pool: FrameBufferPool? = nil) throws(FrameError) -> Frame {
        let kept = Array(parts.prefix(partCount))
        func withBuffers(_ i: Int, _ buffers: [UnsafeRawBufferPointer]) -> Result<Frame, FrameError> {
            guard i < kept.count else {
                return Result { () throws(FrameError) in
                    try decode(parts: buffers, receivedParts: parts.count, limits: limits, buffers: pool)
                }
            }
            return kept[i].withUnsafeBytes { withBuffers(i + 1, buffers + [$0]) }
        }
        return try withBuffers(0, []).get()
    }

    /// Decodes a received frame message in place (no copy of its parts but the decoded pixels),
    /// into buffers taken from `pool` when it has spares of the frame's size.
    public static func decode(_ message: ReceivedMessage, limits: Limits = Limits(),
                              buffers pool: FrameBufferPool? = nil) throws(FrameError) -> Frame {
        try message.withParts { parts throws(FrameError) in
            try decode(parts: parts, receivedParts: message.partCount, limits: limits, buffers: pool)
        }
    }

    /// The decoder. Every size is checked before the bytes it bounds are read: part count and
    /// header length, then the header's fields and dimensions against `limits`, then each
    /// payload's byte count against what the formats imply, and only then the payloads
    /// (holes and coordinate range while converting). `parts` holds at most the first
    /// `partCount` parts of a message of `receivedParts` parts. The pixels are converted in one
    /// pass each into the frame's buffers (from `pool` when it has spares).
    static func decode(parts: [UnsafeRawBufferPointer], receivedParts: Int, limits: Limits,
                       buffers pool: FrameBufferPool?) throws(FrameError) -> Frame {
        guard receivedParts == partCount, parts.count == partCount else {
            let id = parts.count >= 2 && parts[1].count <= maxHeaderBytes ? peekFrameId(parts[1]) : nil
            throw FrameError(.badParts, "expected \(partCount) parts (topic, header, rgb, xyz), got \(receivedParts)", frameId: id)
        }
        let header = try decodeHeader(parts[1], limits: limits)
        let id = header.frameId, pixels = header.width * header.height
        for (index, name, bytesPerPixel) in [(2, "RGB", header.rgb.bytesPerPixel), (3, "XYZ", header.xyz.bytesPerPixel)] {
            guard parts[index].count == pixels * bytesPerPixel else {
                let format = index == 2 ? header.rgb.rawValue : header.xyz.rawValue
                throw FrameError(.badSize, "\(name) part has \(parts[index].count) bytes, \(header.width)×\(header.height) \(format) is \(pixels * bytesPerPixel)",
                                 frameId: id)
            }
        }
        var (rgb, cloud) = pool?.take(pixels: pixels) ?? ([], [])
        let unit = try decodeGeometry(parts[3], header: header, limits: limits, into: &cloud)
        header.rgb.rgbBytes(parts[2], pixels: pixels, into: &rgb)
        return Frame(frameId: id, timestampNs: header.timestampNs, unit: unit,
                     rgb: RGBImage(height: header.height, width: header.width, bytes: rgb),
                     cloud: Tensor(shape: [header.height, header.width, 3], scalars: cloud))
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

    /// Geometry part → XYZ [H·W·3] in `scalars` and its unit, converted by
    /// `SensorGeometry.points` (the file readers' conversion): holes become (0, 0, 0), depth is
    /// back-projected with the header's intrinsics. Any finite coordinate beyond
    /// `limits.maxCoordinateM` refuses the frame.
    static func decodeGeometry(_ bytes: UnsafeRawBufferPointer, header: FrameHeader, limits: Limits,
                               into scalars: inout [Float]) throws(FrameError) -> LengthUnit {
        let unit = header.xyz.cloudUnit(declared: header.unit)
        let camera = header.intrinsics.map { DepthCamera(intrinsics: $0, depthScale: header.depthScale ?? FrameHeader.defaultDepthScale) }
        let geometry = SensorGeometry(format: header.xyz, width: header.width, height: header.height, camera: camera)
        do throws(SensorGeometry.FarPoint) {
            try geometry.points(bytes, limit: limits.maxCoordinateM / Double(unit.metres), into: &scalars)
            return unit
        } catch {
            throw FrameError(.outOfRange, "XYZ pixel (row \(error.row), column \(error.column)) is \(Float(error.distance)) \(unit.rawValue) from the sensor; input.max_coordinate_m is \(limits.maxCoordinateM) m",
                             frameId: header.frameId)
        }
    }
}

/// Spare pixel buffers of preprocessed frames, for the decoder to reuse: in steady state a
/// received frame is decoded into the buffers of one that was preprocessed, so no frame
/// allocates (and page-faults in) its 15 bytes a pixel anew. The serve pipeline gives a
/// frame's buffers back as soon as its preprocessing returns (`FramePipeline.frameBuffers`).
/// At most `capacity` spares are kept, the newest; buffers of another frame size are dropped
/// as they age out.
public final class FrameBufferPool: @unchecked Sendable {
    public let capacity: Int
    private let lock = NSLock()
    /// RGB bytes and XYZ values of one frame each, oldest first.
    private var spares: [(rgb: [UInt8], cloud: [Float])] = []

    public init(capacity: Int = 2) { self.capacity = capacity }

    /// A spare for frames of `pixels` pixels (pixels × 3 bytes and values), or nil.
    func take(pixels: Int) -> (rgb: [UInt8], cloud: [Float])? {
        lock.lock(); defer { lock.unlock() }
        guard let i = spares.lastIndex(where: { $0.rgb.count == 3 * pixels && $0.cloud.count == 3 * pixels }) else { return nil }
        return spares.remove(at: i)
    }

    /// Takes `frame`'s pixel buffers as a spare (the frame is left without pixels). A buffer
    /// still shared with another holder (a recorder) is copied before the decoder writes to it,
    /// as any shared array is.
    public func recycle(_ frame: inout Frame) {
        var spare: (rgb: [UInt8], cloud: [Float]) = ([], [])
        swap(&spare.rgb, &frame.rgb.bytes)
        swap(&spare.cloud, &frame.cloud.scalars)
        guard !spare.rgb.isEmpty && spare.rgb.count == spare.cloud.count else { return }
        lock.lock(); defer { lock.unlock() }
        spares.append(spare)
        if spares.count > capacity { spares.removeFirst() }
    }
}
