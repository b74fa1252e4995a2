import CFMData
import CFMDetector
import Foundation

// The typed schema of protocol v1, in one place: the frame header a sensor sends, the
// result the daemon publishes, the verdicts and every error code. `docs/result.schema.json`
// is the result's JSON Schema; a test validates encoded results against it.

/// Every `error.code` a result can carry: one stable string each.
public enum ErrorCode: String, Codable, Sendable, CaseIterable {
    // The decoder's: the frame never reached inference.
    /// Not 4 parts (topic, header, rgb, xyz).
    case badParts = "bad_parts"
    /// Header too long, not JSON, a field missing, of the wrong type or out of its range.
    case badHeader = "bad_header"
    /// A payload part's byte count does not follow from the header.
    case badSize = "bad_size"
    /// width × height beyond `input.max_width` × `input.max_height`.
    case tooLarge = "too_large"
    /// A finite coordinate beyond `input.max_coordinate_m` (after unit conversion).
    case outOfRange = "out_of_range"
    // The detector's (`DetectorError.code`).
    case tooFewPoints = "too_few_points"
    case badInput = "bad_input"
    case nonFinite = "non_finite"
    // The pipeline's.
    /// Shed by the queue's overflow policy or at a shutdown's drain timeout.
    case dropped
    /// Anything else (a bug): the message says what.
    case `internal`

    /// The code of a detector error.
    public init(_ error: DetectorError) {
        switch error {
        case .tooFewPoints: self = .tooFewPoints
        case .badInput: self = .badInput
        case .nonFinite: self = .nonFinite
        }
    }
}

/// A frame refused before or during inference: a stable `code` (the result's `error.code`)
/// and a one-line message (the result's `error.message`).
public struct FrameError: Error, Equatable, CustomStringConvertible, Sendable, Codable {
    public var code: ErrorCode
    public var message: String
    /// The frame id when the header could be read; an invalid id is echoed escaped and truncated.
    public var frameId: String?

    public init(_ code: ErrorCode, _ message: String, frameId: String? = nil) {
        (self.code, self.message, self.frameId) = (code, message, frameId)
    }

    public var description: String { "\(code.rawValue): \(message)" }

    /// The wire error of any error thrown while processing a frame.
    public static func from(_ error: Error, frameId: String?) -> FrameError {
        switch error {
        case var e as FrameError:
            e.frameId = e.frameId ?? frameId
            return e
        case let e as DetectorError: return FrameError(ErrorCode(e), e.description, frameId: frameId)
        default: return FrameError(.internal, "\(error)", frameId: frameId)
        }
    }

    /// On the wire: `{"code": …, "message": …}` (the id is the result's `frame_id`).
    enum CodingKeys: String, CodingKey { case code, message }
}

/// The outcome of a frame.
public enum Verdict: String, Sendable, CaseIterable, Codable {
    case pass, reject, error, dropped
}

// MARK: - Frame header

// The colour and geometry layouts (`RGBFormat`, `XYZFormat`, `Intrinsics`) and their
// conversions live in CFMData (SensorLayouts.swift), shared with the file readers.

/// Part 1 of a frame message: the JSON header. Absent optional fields take their defaults
/// (`rgb8`, `xyz_f32le`, `m`, `depth_scale` 0.001).
public struct FrameHeader: Codable, Sendable, Equatable {
    /// Protocol version; this daemon speaks 1.
    public var v: Int
    /// The sensor's id of the frame, echoed in the result: 1…256 bytes of printable UTF-8.
    public var frameId: String
    /// The sensor's capture time, when it sends one (not interpreted).
    public var timestampNs: Int64?
    public var width: Int
    public var height: Int
    public var rgb: RGBFormat
    public var xyz: XYZFormat
    /// Unit of `xyz_f32le` and `depth_f32le` values (`depth_u16le` has `depth_scale`).
    public var unit: LengthUnit
    /// Required by the depth formats.
    public var intrinsics: Intrinsics?
    /// `depth_u16le` only: metres per count (default 0.001).
    public var depthScale: Double?

    public static let defaultDepthScale = DepthCamera.defaultDepthScale

    public init(frameId: String, width: Int, height: Int, timestampNs: Int64? = nil, rgb: RGBFormat = .rgb8,
                xyz: XYZFormat = .xyz, unit: LengthUnit = .m, intrinsics: Intrinsics? = nil, depthScale: Double? = nil) {
        v = FrameCodec.version
        (self.frameId, self.width, self.height, self.timestampNs) = (frameId, width, height, timestampNs)
        (self.rgb, self.xyz, self.unit, self.intrinsics, self.depthScale) = (rgb, xyz, unit, intrinsics, depthScale)
    }

    enum CodingKeys: String, CodingKey {
        case v, frameId = "frame_id", timestampNs = "timestamp_ns", width, height, rgb, xyz, unit, intrinsics,
             depthScale = "depth_scale"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        v = try c.decode(Int.self, forKey: .v)
        frameId = try c.decode(String.self, forKey: .frameId)
        timestampNs = try c.decodeIfPresent(Int64.self, forKey: .timestampNs)
        width = try c.decode(Int.self, forKey: .width)
        height = try c.decode(Int.self, forKey: .height)
        rgb = try c.decodeIfPresent(RGBFormat.self, forKey: .rgb) ?? .rgb8
        xyz = try c.decodeIfPresent(XYZFormat.self, forKey: .xyz) ?? .xyz
        unit = try c.decodeIfPresent(LengthUnit.self, forKey: .unit) ?? .m
        intrinsics = try c.decodeIfPresent(Intrinsics.self, forKey: .intrinsics)
        depthScale = try c.decodeIfPresent(Double.self, forKey: .depthScale)
    }

    /// What a header field must be, for `bad_header` messages (never the value received).
    static func expectation(_ key: CodingKeys) -> String {
        switch key {
        case .v: "an integer"
        case .frameId: "a string"
        case .timestampNs: "an integer or null"
        case .width, .height: "an integer"
        case .rgb: "one of " + RGBFormat.allCases.map(\.rawValue).joined(separator: ", ")
        case .xyz: "one of " + XYZFormat.allCases.map(\.rawValue).joined(separator: ", ")
        case .unit: "one of " + LengthUnit.allCases.map(\.rawValue).joined(separator: ", ")
        case .intrinsics: "an object of numbers fx, fy, cx, cy"
        case .depthScale: "a number"
        }
    }
}

// MARK: - Result

/// One result message (part 1 of the output; the topic is `<prefix>.<verdict>`).
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
    /// Connected regions above the threshold in sensor pixels, largest first, at most
    /// `DefectRegions.defaultLimit`; empty for a pass, nil for errors and drops.
    public var regions: [DefectRegion]?
    /// How many regions there were before the cap; nil when `regions` is.
    public var regionsTotal: Int?
    /// Publication sequence number (`seq`), assigned by the publisher; nil until then.
    public var sequence: UInt64?

    public init(frameId: String?, verdict: Verdict, score: Float? = nil, threshold: Float? = nil, tier: String? = nil,
                model: String? = nil, latencyMs: Double = 0, stagesMs: [(name: String, ms: Double)] = [],
                foregroundPoints: Int? = nil, error: FrameError? = nil, receivedNs: Int64 = 0, publishedNs: Int64 = 0,
                map: [Float]? = nil, regions: [DefectRegion]? = nil, regionsTotal: Int? = nil) {
        self.frameId = frameId; self.verdict = verdict; self.score = score; self.threshold = threshold
        self.tier = tier; self.model = model; self.latencyMs = latencyMs; self.stagesMs = stagesMs
        self.foregroundPoints = foregroundPoints; self.error = error; self.receivedNs = receivedNs
        self.publishedNs = publishedNs; self.map = map; self.regions = regions; self.regionsTotal = regionsTotal
    }
}

/// The result's JSON: every key always present (null when absent), latencies rounded to the
/// microsecond, non-finite scores as null. The map travels as its own binary part.
extension FrameResult: Codable {
    enum CodingKeys: String, CodingKey {
        case v, seq, frameId = "frame_id", verdict, score, threshold, tier, model, latencyMs = "latency_ms",
             stagesMs = "stages_ms", foregroundPoints = "foreground_points", regions, regionsTotal = "regions_total",
             error, receivedNs = "received_ns", publishedNs = "published_ns"
    }

    public func encode(to encoder: Encoder) throws {
        func finite(_ f: Float?) -> Float? { f.flatMap { $0.isFinite ? $0 : nil } }
        func microsecond(_ ms: Double) -> Double { (ms * 1000).rounded() / 1000 }
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(FrameCodec.version, forKey: .v)
        try c.encode(sequence, forKey: .seq)
        try c.encode(frameId, forKey: .frameId)
        try c.encode(verdict, forKey: .verdict)
        try c.encode(finite(score), forKey: .score)
        try c.encode(finite(threshold), forKey: .threshold)
        try c.encode(tier, forKey: .tier)
        try c.encode(model, forKey: .model)
        try c.encode(microsecond(latencyMs), forKey: .latencyMs)
        try c.encode(Dictionary(stagesMs.map { ($0.name, microsecond($0.ms)) }) { $1 }, forKey: .stagesMs)
        try c.encode(foregroundPoints, forKey: .foregroundPoints)
        try c.encode(regions, forKey: .regions)
        try c.encode(regionsTotal, forKey: .regionsTotal)
        try c.encode(error, forKey: .error)
        try c.encode(receivedNs, forKey: .receivedNs)
        try c.encode(publishedNs, forKey: .publishedNs)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let frameId = try c.decodeIfPresent(String.self, forKey: .frameId)
        var error = try c.decodeIfPresent(FrameError.self, forKey: .error)
        error?.frameId = frameId
        let stages = try c.decodeIfPresent([String: Double].self, forKey: .stagesMs) ?? [:]
        self.init(frameId: frameId, verdict: try c.decode(Verdict.self, forKey: .verdict),
                  score: try c.decodeIfPresent(Float.self, forKey: .score),
                  threshold: try c.decodeIfPresent(Float.self, forKey: .threshold),
                  tier: try c.decodeIfPresent(String.self, forKey: .tier), model: try c.decodeIfPresent(String.self, forKey: .model),
                  latencyMs: try c.decodeIfPresent(Double.self, forKey: .latencyMs) ?? 0,
                  stagesMs: stages.map { (name: $0.key, ms: $0.value) }.sorted { $0.name < $1.name },
                  foregroundPoints: try c.decodeIfPresent(Int.self, forKey: .foregroundPoints), error: error,
                  receivedNs: try c.decodeIfPresent(Int64.self, forKey: .receivedNs) ?? 0,
                  publishedNs: try c.decodeIfPresent(Int64.self, forKey: .publishedNs) ?? 0,
                  regions: try c.decodeIfPresent([DefectRegion].self, forKey: .regions),
                  regionsTotal: try c.decodeIfPresent(Int.self, forKey: .regionsTotal))
        sequence = try c.decodeIfPresent(UInt64.self, forKey: .seq)
    }
}

// MARK: - Untrusted text

/// Text that came from a peer, made safe to echo and to log: one escaping rule everywhere
/// (results, stderr lines, journal fields) so no field can start a forged line.
public enum WireText {
    /// Longest `frame_id` accepted, in UTF-8 bytes.
    public static let maxFrameIdBytes = 256

    /// Whether `scalar` must be escaped: control characters (C0, DEL, C1) and the Unicode line
    /// and paragraph separators, which terminals and log viewers may render as line breaks.
    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .lineSeparator, .paragraphSeparator: true
        default: false
        }
    }

    /// Printable: non-empty, no character `escaped` would rewrite (a backslash is fine).
    public static func isPrintable(_ text: String) -> Bool {
        !text.isEmpty && !text.unicodeScalars.contains(where: needsEscape)
    }

    /// A valid frame id (1…256 bytes of printable UTF-8) as it is, anything else escaped and
    /// truncated to 256 bytes: what an error result may echo.
    public static func echoedFrameId(_ id: String) -> String {
        id.utf8.count <= maxFrameIdBytes && isPrintable(id) ? id : escaped(id, maxBytes: maxFrameIdBytes)
    }

    /// `text` with `\` → `\\`, newline, carriage return and tab as `\n` `\r` `\t`, every other
    /// character of `needsEscape` as `\u{XXXX}`; when longer than `maxBytes` UTF-8 bytes, cut at
    /// a character boundary and ended with "…" (within `maxBytes`). Reads at most ~`maxBytes`
    /// characters of `text`, however long it is.
    public static func escaped(_ text: String, maxBytes: Int) -> String {
        let ellipsis = "…", ellipsisBytes = 3
        var out = "", bytes = 0, cut: String.Index?
        for scalar in text.unicodeScalars {
            let piece: String
            switch scalar {
            case "\\": piece = "\\\\"
            case "\n": piece = "\\n"
            case "\r": piece = "\\r"
            case "\t": piece = "\\t"
            case _ where needsEscape(scalar): piece = "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            default: piece = String(scalar)
            }
            let n = piece.utf8.count
            if bytes + n > maxBytes - ellipsisBytes, cut == nil { cut = out.endIndex }
            if bytes + n > maxBytes { return String(out[..<(cut ?? out.endIndex)]) + ellipsis }
            out += piece
            bytes += n
        }
        return out
    }
}
