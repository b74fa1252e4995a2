import CFMData
import CFMDetector
import CFMTensor
import Foundation

/// A frame refused before or during inference: a stable machine-readable `code`
/// (wire protocol `error.code`) and a one-line message.
public struct FrameError: Error, Equatable, CustomStringConvertible, Sendable {
    public var code: String
    public var message: String
    /// The frame id, when the header could be read.
    public var frameId: String?

    public init(_ code: String, _ message: String, frameId: String? = nil) {
        (self.code, self.message, self.frameId) = (code, message, frameId)
    }

    public var description: String { "\(code): \(message)" }

    /// Every code the codec itself produces.
    public static let codecCodes = ["bad_parts", "bad_header", "bad_size", "too_large", "non_finite"]

    /// The wire error of any error thrown while processing a frame.
    public static func from(_ error: Error, frameId: String?) -> FrameError {
        switch error {
        case var e as FrameError:
            e.frameId = e.frameId ?? frameId
            return e
        case let e as DetectorError: return FrameError(e.code, e.description, frameId: frameId)
        default: return FrameError("internal", "\(error)", frameId: frameId)
        }
    }
}

/// One decoded protocol-v1 frame.
public struct Frame: Sendable {
    public var frameId: String
    public var timestampNs: Int64?
    public var unit: LengthUnit
    public var rgb: RGBImage
    /// [H, W, 3] in `unit`.
    public var cloud: Tensor

    public init(frameId: String, timestampNs: Int64? = nil, unit: LengthUnit = .m, rgb: RGBImage, cloud: Tensor) {
        (self.frameId, self.timestampNs, self.unit, self.rgb, self.cloud) = (frameId, timestampNs, unit, rgb, cloud)
    }

    public var width: Int { rgb.width }
    public var height: Int { rgb.height }
}

/// The outcome of a frame.
public enum Verdict: String, Sendable, CaseIterable, Codable {
    case pass, reject, error, dropped
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

    public init(score: Float, threshold: Float, tier: String, model: String, stagesMs: [(name: String, ms: Double)] = [],
                foregroundPoints: Int? = nil, map: [Float]? = nil) {
        (self.score, self.threshold, self.tier, self.model, self.stagesMs, self.foregroundPoints, self.map) =
            (score, threshold, tier, model, stagesMs, foregroundPoints, map)
    }

    /// score > threshold → reject, else pass.
    public var verdict: Verdict { score > threshold ? .reject : .pass }
}

/// One result message (protocol v1 output).
public struct FrameResult: Sendable {
    public var frameId: String?
    public var verdict: Verdict
    public var score: Float?
    public var threshold: Float?
    public var tier: String?
    public var model: String?
    public var latencyMs: Double
    public var stagesMs: [(name: String, ms: Double)]
    public var foregroundPoints: Int?
    public var error: FrameError?
    /// Wall-clock (CLOCK_REALTIME) nanoseconds.
    public var receivedNs: Int64
    public var publishedNs: Int64
    public var map: [Float]?
    public var sequence: UInt64?

    public init(frameId: String?, verdict: Verdict, score: Float? = nil, threshold: Float? = nil, tier: String? = nil,
                model: String? = nil, latencyMs: Double = 0, stagesMs: [(name: String, ms: Double)] = [],
                foregroundPoints: Int? = nil, error: FrameError? = nil, receivedNs: Int64 = 0, publishedNs: Int64 = 0,
                map: [Float]? = nil) {
        self.frameId = frameId; self.verdict = verdict; self.score = score; self.threshold = threshold
        self.tier = tier; self.model = model; self.latencyMs = latencyMs; self.stagesMs = stagesMs
        self.foregroundPoints = foregroundPoints; self.error = error; self.receivedNs = receivedNs
        self.publishedNs = publishedNs; self.map = map
    }
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

/// Wire protocol v1 (DESIGN.md §4): frames in, results out.
public enum FrameCodec {
    public static let version = 1
    /// Longer header parts are refused unread.
    public static let maxHeaderBytes = 65_536

    /// Limits the decoder enforces.
    public struct Limits: Sendable {
        public var maxWidth: Int, maxHeight: Int
        public init(maxWidth: Int = 4096, maxHeight: Int = 4096) { (self.maxWidth, self.maxHeight) = (maxWidth, maxHeight) }
    }

    /// Decodes and validates one multipart input message: 4 parts (topic, header JSON, RGB,
    /// XYZ), header fields and types, sizes against the limits, then exact part sizes, then
    /// finite coordinates. Throws `FrameError` with its stable code.
    public static func decode(_ parts: [[UInt8]], limits: Limits = Limits()) throws(FrameError) -> Frame {
        guard parts.count == 4 else {
            throw FrameError("bad_parts", "expected 4 parts (topic, header, rgb, xyz), got \(parts.count)",
                             frameId: parts.count >= 2 ? peekFrameId(parts[1]) : nil)
        }
        guard parts[1].count <= maxHeaderBytes else {
            throw FrameError("bad_header", "header is \(parts[1].count) bytes; at most \(maxHeaderBytes) are accepted")
        }
        let json: [String: Any]
        do {
            guard let object = try JSONSerialization.jsonObject(with: Data(parts[1])) as? [String: Any] else {
                throw FrameError("bad_header", "header is not a JSON object")
            }
            json = object
        } catch let e as FrameError { throw e } catch {
            throw FrameError("bad_header", "header is not valid JSON")
        }
        let frameId = json["frame_id"] as? String
        func bad(_ message: String) -> FrameError { FrameError("bad_header", message, frameId: frameId) }
        func integer(_ key: String) -> Int? {
            guard let n = json[key] as? NSNumber, CFGetTypeIDIfBool(n) == false else { return nil }
            let d = n.doubleValue
            return d == d.rounded() && abs(d) < 9.0e18 ? n.intValue : nil
        }
        guard let v = integer("v") else { throw bad("missing or non-integer \"v\"") }
        guard v == version else { throw bad("protocol version \(v) is not supported (this daemon speaks v\(version))") }
        guard let frameId, !frameId.isEmpty else { throw bad("missing or empty string \"frame_id\"") }
        guard frameId.utf8.count <= 256 else { throw bad("\"frame_id\" is longer than 256 bytes") }
        var timestamp: Int64?
        if json["timestamp_ns"] != nil, !(json["timestamp_ns"] is NSNull) {
            guard let t = integer("timestamp_ns") else { throw bad("\"timestamp_ns\" is not an integer") }
            timestamp = Int64(t)
        }
        guard let width = integer("width"), let height = integer("height") else { throw bad("missing or non-integer \"width\"/\"height\"") }
        guard width > 0, height > 0 else { throw bad("width and height must be positive, got \(width)×\(height)") }
        let rgbFormat = json["rgb"] as? String ?? "rgb8", xyzFormat = json["xyz"] as? String ?? "xyz_f32le"
        guard rgbFormat == "rgb8" else { throw bad("\"rgb\" format '\(rgbFormat)' is not supported (rgb8)") }
        guard xyzFormat == "xyz_f32le" else { throw bad("\"xyz\" format '\(xyzFormat)' is not supported (xyz_f32le)") }
        let unitName = json["unit"] as? String ?? "m"
        guard let unit = LengthUnit(rawValue: unitName) else { throw bad("\"unit\" '\(unitName)' is not m or mm") }
        guard width <= limits.maxWidth, height <= limits.maxHeight else {
            throw FrameError("too_large", "\(width)×\(height) exceeds the configured maximum \(limits.maxWidth)×\(limits.maxHeight)",
                             frameId: frameId)
        }
        let pixels = width * height
        guard parts[2].count == pixels * 3 else {
            throw FrameError("bad_size", "RGB part has \(parts[2].count) bytes, \(width)×\(height)×3 = \(pixels * 3) expected", frameId: frameId)
        }
        guard parts[3].count == pixels * 12 else {
            throw FrameError("bad_size", "XYZ part has \(parts[3].count) bytes, \(width)×\(height)×3×4 = \(pixels * 12) expected",
                             frameId: frameId)
        }
        var scalars = [Float](repeating: 0, count: pixels * 3)
        var firstBad = -1
        parts[3].withUnsafeBytes { raw in
            scalars.withUnsafeMutableBufferPointer { out in
                for i in 0..<out.count {
                    let f = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                    out[i] = f
                    if !f.isFinite && firstBad < 0 { firstBad = i }
                }
            }
        }
        if firstBad >= 0 {
            throw FrameError("non_finite", "XYZ pixel (row \(firstBad / 3 / width), column \(firstBad / 3 % width)) is \(scalars[firstBad])",
                             frameId: frameId)
        }
        return Frame(frameId: frameId, timestampNs: timestamp, unit: unit,
                     rgb: RGBImage(height: height, width: width, bytes: parts[2]),
                     cloud: Tensor(shape: [height, width, 3], scalars: scalars))
    }

    /// JSON booleans arrive as NSNumber too (objCType "c"); they are not integers.
    private static func CFGetTypeIDIfBool(_ n: NSNumber) -> Bool {
        String(cString: n.objCType) == "c"
    }

    /// Best effort: the frame id of a header we will refuse anyway.
    static func peekFrameId(_ header: [UInt8]) -> String? {
        (try? JSONSerialization.jsonObject(with: Data(header)) as? [String: Any])?["frame_id"] as? String
    }

    /// Encodes a frame as a protocol-v1 message (sensor side: replay, tests).
    public static func encode(_ frame: Frame, topic: String = "frame") -> [[UInt8]] {
        var header: [String: Any] = ["v": version, "frame_id": frame.frameId, "width": frame.width, "height": frame.height,
                                     "rgb": "rgb8", "xyz": "xyz_f32le", "unit": frame.unit.rawValue]
        header["timestamp_ns"] = frame.timestampNs ?? wallClockNs()
        return [Array(topic.utf8), json(header), frame.rgb.bytes, littleEndianBytes(frame.cloud.scalars)]
    }

    /// Float32 little-endian bytes.
    public static func littleEndianBytes(_ values: [Float]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count * 4)
        out.withUnsafeMutableBytes { raw in
            for (i, v) in values.enumerated() { raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        }
        return out
    }

    static func json(_ object: [String: Any]) -> [UInt8] {
        Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8))
    }

    /// Topic of a result: `<prefix>.<verdict>`.
    public static func topic(_ verdict: Verdict, prefix: String) -> String { "\(prefix).\(verdict.rawValue)" }

    /// Encodes a result: topic, JSON with every field of §4, and the map when `includeMap`
    /// and the result has one.
    public static func encode(_ r: FrameResult, topicPrefix: String = "result", includeMap: Bool = false) -> [[UInt8]] {
        func number(_ f: Float?) -> Any { f.map { $0.isFinite ? Double($0) as Any : NSNull() } ?? NSNull() }
        func rounded(_ ms: Double) -> Double { (ms * 1000).rounded() / 1000 }
        var stages: [String: Any] = [:]
        for s in r.stagesMs { stages[s.name] = rounded(s.ms) }
        let body: [String: Any] = [
            "v": version,
            "frame_id": r.frameId as Any? ?? NSNull(),
            "verdict": r.verdict.rawValue,
            "score": number(r.score),
            "threshold": number(r.threshold),
            "tier": r.tier as Any? ?? NSNull(),
            "model": r.model as Any? ?? NSNull(),
            "latency_ms": rounded(r.latencyMs),
            "stages_ms": stages,
            "foreground_points": r.foregroundPoints as Any? ?? NSNull(),
            "error": r.error.map { ["code": $0.code, "message": $0.message] as Any } ?? NSNull(),
            "received_ns": r.receivedNs,
            "published_ns": r.publishedNs,
            "seq": r.sequence.map { $0 as Any } ?? NSNull(),
        ]
        var parts = [Array(topic(r.verdict, prefix: topicPrefix).utf8), json(body)]
        if includeMap, let map = r.map { parts.append(littleEndianBytes(map)) }
        return parts
    }

    /// Decodes a result message (client side: replay, tests).
    public static func decodeResult(_ parts: [[UInt8]]) throws(FrameError) -> FrameResult {
        guard parts.count == 2 || parts.count == 3,
              let json = (try? JSONSerialization.jsonObject(with: Data(parts[1]))) as? [String: Any],
              let verdictName = json["verdict"] as? String, let verdict = Verdict(rawValue: verdictName) else {
            throw FrameError("bad_result", "not a protocol-v1 result message")
        }
        let stages = (json["stages_ms"] as? [String: Any] ?? [:]).compactMap { k, v in (v as? NSNumber).map { (name: k, ms: $0.doubleValue) } }
        var error: FrameError?
        if let e = json["error"] as? [String: Any] {
            error = FrameError(e["code"] as? String ?? "", e["message"] as? String ?? "", frameId: json["frame_id"] as? String)
        }
        var map: [Float]?
        if parts.count == 3 {
            map = parts[2].withUnsafeBytes { raw in
                (0..<(parts[2].count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            }
        }
        return FrameResult(frameId: json["frame_id"] as? String, verdict: verdict,
                           score: (json["score"] as? NSNumber)?.floatValue, threshold: (json["threshold"] as? NSNumber)?.floatValue,
                           tier: json["tier"] as? String, model: json["model"] as? String,
                           latencyMs: (json["latency_ms"] as? NSNumber)?.doubleValue ?? 0, stagesMs: stages.sorted { $0.name < $1.name },
                           foregroundPoints: (json["foreground_points"] as? NSNumber)?.intValue, error: error,
                           receivedNs: (json["received_ns"] as? NSNumber)?.int64Value ?? 0,
                           publishedNs: (json["published_ns"] as? NSNumber)?.int64Value ?? 0, map: map)
    }
}
