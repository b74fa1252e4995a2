import CFMData
import CFMDetector
import CFMGeometry
import CFMTensor
import Foundation

/// One decoded protocol-v1 frame: `height` × `width` pixel-registered colour and geometry.
/// Its pixels are owned arrays or the received message's own bytes (`FramePixels`); a frame
/// handed over to preprocessing keeps only its id and size (`FrameStages`).
public struct Frame: Sendable {
    public var frameId: String
    public var timestampNs: Int64?
    public var unit: LengthUnit
    public let height: Int, width: Int
    /// Colour, [H·W·3] bytes, row-major RGB (`RGBImage`'s layout).
    public var rgb: FramePixels<UInt8>
    /// Geometry, [H·W·3] Float32 in `unit`, (0, 0, 0) where nothing was measured once decoded.
    public var cloud: FramePixels<Float>

    /// A frame of `rgb` and `cloud` [H, W, 3] (their arrays become the frame's, no copy).
    public init(frameId: String, timestampNs: Int64? = nil, unit: LengthUnit = .m, rgb: RGBImage, cloud: Tensor) {
        precondition(cloud.shape == [rgb.height, rgb.width, 3], "cloud \(cloud.shape) for a \(rgb.height)×\(rgb.width) RGB image")
        self.init(frameId: frameId, timestampNs: timestampNs, unit: unit, height: rgb.height, width: rgb.width,
                  rgb: FramePixels(rgb.bytes), cloud: FramePixels(cloud.scalars))
    }

    init(frameId: String, timestampNs: Int64?, unit: LengthUnit, height: Int, width: Int,
         rgb: FramePixels<UInt8>, cloud: FramePixels<Float>) {
        (self.frameId, self.timestampNs, self.unit, self.height, self.width) = (frameId, timestampNs, unit, height, width)
        (self.rgb, self.cloud) = (rgb, cloud)
    }

    /// Calls `body` with the frame's colour and its cloud to edit in place, valid only during
    /// the call: the cloud is written where it lives — an owned array or the received
    /// message's bytes — unless another frame value shares it (then it is copied first).
    public mutating func withPixels<R>(editingCloud body: (RGBImageView, OrganizedCloudView) throws -> R) throws -> R {
        let (h, w) = (height, width)
        return try rgb.withUnsafeBufferPointer { rgb in
            try cloud.withUnsafeMutableBufferPointer { cloud in
                try body(RGBImageView(height: h, width: w, bytes: rgb), OrganizedCloudView(height: h, width: w, coordinates: cloud))
            }
        }
    }
}

/// What scoring a frame yields (the pipeline adds ids, times and the verdict of sheds and errors).
public struct Inference: Sendable {
    public var score: Float
    public var threshold: Float
    public var tier: String
    public var model: String
    public var stagesMs: [(name: String, ms: Double)]
    public var foregroundPoints: Int?
    /// The 224×224 anomaly map, when maps are published.
    public var map: [Float]?
    /// Where the defects are, in sensor pixels (largest first, capped); none for a pass.
    public var regions: DefectRegions?

    public init(score: Float, threshold: Float, tier: String, model: String, stagesMs: [(name: String, ms: Double)] = [],
                foregroundPoints: Int? = nil, map: [Float]? = nil, regions: DefectRegions? = nil) {
        (self.score, self.threshold, self.tier, self.model, self.stagesMs, self.foregroundPoints, self.map) =
            (score, threshold, tier, model, stagesMs, foregroundPoints, map)
        self.regions = regions
    }

    /// score > threshold → reject, else pass.
    public var verdict: Verdict { score > threshold ? .reject : .pass }
}

/// Wall-clock nanoseconds since the epoch (what `received_ns`/`published_ns` carry).
public func wallClockNs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// Monotonic nanoseconds (latencies, MONOTONIC_USEC).
public func monotonicNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// A result message that is not protocol v1 (client side: replay, tests).
public struct ResultDecodingError: Error, CustomStringConvertible {
    public var description: String
}

/// Wire protocol v1: frames in (topic, JSON `FrameHeader`, colour, geometry), results out
/// (topic `<prefix>.<verdict>`, JSON `FrameResult`, optionally the map). The decoder lives in
/// FrameDecoder.swift, the typed schema in WireProtocol.swift.
public enum FrameCodec {
    public static let version = 1
    /// Parts of a frame message.
    public static let partCount = 4
    /// Longer header parts are refused unread.
    public static let maxHeaderBytes = 65_536

    /// Encodes a frame as a protocol-v1 message (sensor side: replay, tests) in any layout:
    /// `rgb` reorders the colour channels (`mono8` sends the luma, rounded), `xyz` sends the
    /// XYZ or only Z as a depth image — then `intrinsics` is required, and `depth_u16le`
    /// counts `depthScale` metres (default 0.001), rounded and clamped to 0…65535. Holes
    /// (Z = 0 or not finite) are sent as zero depth.
    public static func encode(_ frame: Frame, topic: String = "frame", rgb: RGBFormat = .rgb8, xyz: XYZFormat = .xyz,
                              intrinsics: Intrinsics? = nil, depthScale: Double? = nil) -> [[UInt8]] {
        precondition(!xyz.isDepth || intrinsics != nil, "\(xyz.rawValue) needs intrinsics")
        let header = FrameHeader(frameId: frame.frameId, width: frame.width, height: frame.height,
                                 timestampNs: frame.timestampNs ?? wallClockNs(), rgb: rgb, xyz: xyz, unit: frame.unit,
                                 intrinsics: xyz.isDepth ? intrinsics : nil, depthScale: xyz == .depthU16 ? depthScale : nil)
        return [Array(topic.utf8), json(header), frame.rgb.withUnsafeBufferPointer { encodeColour($0, as: rgb) },
                encodeGeometry(frame.cloud, unit: frame.unit, as: xyz, depthScale: depthScale ?? FrameHeader.defaultDepthScale)]
    }

    private static func encodeColour(_ rgb: UnsafeBufferPointer<UInt8>, as format: RGBFormat) -> [UInt8] {
        let pixels = rgb.count / 3
        var out: [UInt8] = []
        out.reserveCapacity(pixels * format.bytesPerPixel)
        for p in 0..<pixels {
            let (r, g, b) = (rgb[3 * p], rgb[3 * p + 1], rgb[3 * p + 2])
            switch format {
            case .rgb8: out += [r, g, b]
            case .bgr8: out += [b, g, r]
            case .rgba8: out += [r, g, b, 255]
            case .bgra8: out += [b, g, r, 255]
            case .mono8:
                let luma: Double = 0.299 * Double(r) + 0.587 * Double(g) + 0.114 * Double(b)
                out.append(UInt8(luma.rounded()))
            }
        }
        return out
    }

    private static func encodeGeometry(_ xyz: FramePixels<Float>, unit: LengthUnit, as format: XYZFormat, depthScale: Double) -> [UInt8] {
        let z = stride(from: 2, to: xyz.count, by: 3).map { xyz[$0].isFinite ? xyz[$0] : 0 }
        switch format {
        case .xyz: return littleEndianBytes(xyz)
        case .depthF32: return littleEndianBytes(z)
        case .depthU16:
            var out = [UInt8](repeating: 0, count: 2 * z.count)
            for (i, value) in z.enumerated() {
                let count = UInt16((Double(value) * Double(unit.metres) / depthScale).rounded().clamped(to: 0...65535))
                out[2 * i] = UInt8(count & 0xFF)
                out[2 * i + 1] = UInt8(count >> 8)
            }
            return out
        }
    }

    /// Float32 little-endian bytes.
    public static func littleEndianBytes(_ values: some Collection<Float>) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count * 4)
        out.withUnsafeMutableBytes { raw in
            for (i, v) in values.enumerated() { raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        }
        return out
    }

    /// Compact JSON with sorted keys.
    static func json<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // The wire types encode only strings, integers, finite numbers and null: this cannot fail.
        return Array(try! encoder.encode(value))
    }

    /// Topic of a result: `<prefix>.<verdict>`.
    public static func topic(_ verdict: Verdict, prefix: String) -> String { "\(prefix).\(verdict.rawValue)" }

    /// Encodes a result: topic, JSON (`FrameResult`'s keys, docs/result.schema.json), and the
    /// map as float32 little-endian when `includeMap` and the result has one.
    public static func encode(_ r: FrameResult, topicPrefix: String = "result", includeMap: Bool = false) -> [[UInt8]] {
        var parts = [Array(topic(r.verdict, prefix: topicPrefix).utf8), json(r)]
        if includeMap, let map = r.map { parts.append(littleEndianBytes(map)) }
        return parts
    }

    /// Decodes a result message (client side: replay, tests).
    public static func decodeResult(_ parts: [[UInt8]]) throws(ResultDecodingError) -> FrameResult {
        guard parts.count == 2 || parts.count == 3 else { throw ResultDecodingError(description: "a result has 2 or 3 parts, got \(parts.count)") }
        var result: FrameResult
        do { result = try JSONDecoder().decode(FrameResult.self, from: Data(parts[1])) } catch {
            throw ResultDecodingError(description: "not a protocol-v1 result: \(error)")
        }
        if parts.count == 3 {
            result.map = parts[2].withUnsafeBytes { raw in
                (0..<(parts[2].count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            }
        }
        return result
    }
}

private extension Double {
    func clamped(to range: ClosedRange<Double>) -> Double { Swift.min(Swift.max(self, range.lowerBound), range.upperBound) }
}
