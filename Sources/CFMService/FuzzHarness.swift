/// What the libFuzzer targets in `fuzz/` check on every input, here so that the test replaying
/// their seed corpora (FuzzCorpusReplayTests) checks exactly the same. Each check returns
/// the contract the input broke, or nil; a trap is a crash in both.
public enum FuzzHarness {
    /// Splits fuzzer input `bytes` into `count` message parts: each of the first `count − 1`
    /// parts is a 2-byte little-endian length followed by that many bytes (cut short when the
    /// input ends); the last part is whatever remains. Every input gives exactly `count` parts
    /// (some possibly empty), so the fuzzer spends its time inside the decoder.
    public static func messageParts(_ bytes: [UInt8], count: Int = 4) -> [[UInt8]] {
        var parts: [[UInt8]] = []
        var offset = 0
        for _ in 0..<max(0, count - 1) {
            let length = offset + 2 <= bytes.count ? Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 : 0
            offset = min(bytes.count, offset + 2)
            let end = min(bytes.count, offset + length)
            parts.append(Array(bytes[offset..<end]))
            offset = end
        }
        parts.append(Array(bytes[offset...]))
        return parts
    }

    /// The input bytes whose `messageParts` are `parts` (each but the last shorter than 64 KiB),
    /// for writing seeds.
    public static func bytes(of parts: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        for part in parts.dropLast() {
            out += [UInt8(truncatingIfNeeded: part.count), UInt8(truncatingIfNeeded: part.count >> 8)] + part
        }
        return out + (parts.last ?? [])
    }

    /// Frames of at most 16×16 pixels, so a valid frame fits a fuzzer input.
    public static let frameLimits = FrameCodec.Limits(maxWidth: 16, maxHeight: 16)

    /// Decodes `bytes` as one input message, as `cfm serve` does (a `ReceivedMessage` whose
    /// pixel parts the frame borrows and the decoder converts in place) and from `[[UInt8]]`
    /// parts (converted into buffers of the frame's own): both must give the same frame or the
    /// same refusal. A frame must agree with its header and the limits (size, coordinate
    /// range); a refusal must carry a message, echo at most a printable frame id of at most 256
    /// bytes, and the error result the daemon would publish must encode and decode back to the
    /// same code.
    public static func frameDecoderViolation(_ bytes: [UInt8]) -> String? {
        let limits = frameLimits, parts = messageParts(bytes)
        func echoable(_ id: String?) -> Bool {
            guard let id else { return true }
            return id.utf8.count <= WireText.maxFrameIdBytes && (id.isEmpty || WireText.isPrintable(id))
        }
        let copied = Result { () throws(FrameError) in try FrameCodec.decode(parts, limits: limits) }
        let borrowed = Result { () throws(FrameError) in try FrameCodec.decode(ReceivedMessage(copying: parts), limits: limits) }
        switch (borrowed, copied) {
        case let (.success(frame), .success(copy)):
            guard frame.frameId == copy.frameId, frame.unit == copy.unit, frame.rgb == copy.rgb,
                  frame.cloud.map(\.bitPattern) == copy.cloud.map(\.bitPattern) else {
                return "decoding in the message's bytes and into buffers gave different frames"
            }
            guard (1...limits.maxWidth).contains(frame.width), (1...limits.maxHeight).contains(frame.height) else {
                return "accepted a \(frame.width)×\(frame.height) frame beyond the \(limits.maxWidth)×\(limits.maxHeight) limit"
            }
            guard frame.cloud.count == 3 * frame.width * frame.height, frame.rgb.count == 3 * frame.width * frame.height else {
                return "frame parts disagree with its \(frame.width)×\(frame.height) header: \(frame.cloud.count) XYZ values, \(frame.rgb.count) RGB bytes"
            }
            let limitInUnit = limits.maxCoordinateM / Double(frame.unit.metres)
            guard frame.cloud.allSatisfy({ $0.isFinite && abs(Double($0)) <= limitInUnit }) else {
                return "accepted a coordinate that is non-finite or beyond \(limits.maxCoordinateM) m"
            }
            guard !frame.frameId.isEmpty, echoable(frame.frameId) else { return "accepted the frame id \(frame.frameId.debugDescription)" }
        case let (.failure(error), .failure(copyError)):
            guard error.code == copyError.code, error.message == copyError.message, error.frameId == copyError.frameId else {
                return "decoding in the message's bytes refused with '\(error)', into buffers with '\(copyError)'"
            }
            guard !error.message.isEmpty else { return "refused without a message: \(error)" }
            guard echoable(error.frameId) else { return "a refusal echoes the frame id \(error.frameId.debugDescription)" }
            let result = FrameResult(frameId: error.frameId, verdict: .error, error: error)
            let decoded = try? FrameCodec.decodeResult(FrameCodec.encode(result))
            guard decoded?.error?.code == error.code else { return "the error result of '\(error)' does not decode back" }
        case (.success, .failure(let error)), (.failure(let error), .success):
            return "one decoding refused with '\(error)', the other accepted the frame"
        }
        return nil
    }

    /// Parses `bytes` (UTF-8, invalid sequences repaired) as a config file: it must give a
    /// config or a `ConfigError` with a reason, nothing else.
    public static func configParserViolation(_ bytes: [UInt8]) -> String? {
        do {
            _ = try ServiceConfig.parse(String(decoding: bytes, as: UTF8.self), file: "fuzz.yaml")
        } catch let error as ConfigError {
            if error.reason.isEmpty { return "a ConfigError without a reason: \(error)" }
        } catch {
            return "ServiceConfig.parse threw something other than a ConfigError: \(error)"
        }
        return nil
    }
}
