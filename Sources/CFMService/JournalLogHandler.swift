import CSystemd
import Foundation
import Logging

/// Where log lines go: the journal's native protocol or stderr.
public enum LogDestination: Sendable {
    case journal, stderr

    /// `auto`: the journal when stderr is connected to it (JOURNAL_STREAM set), else stderr.
    public static func resolve(_ setting: ServiceConfig.Journald) -> LogDestination {
        switch setting {
        case .on: .journal
        case .off: .stderr
        case .auto: ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil ? .journal : .stderr
        }
    }
}

/// A swift-log handler writing structured journal entries through `sd_journal_sendv`:
/// MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, CODE_FILE/CODE_LINE/CODE_FUNC, and each metadata
/// key as an upper-case field (`frame_id` → FRAME_ID, `verdict` → VERDICT, …). Plain
/// `LEVEL message key=value` lines on stderr when the destination is stderr.
///
/// Log text often carries what a peer sent (frame ids, error messages): on both paths the
/// message and every metadata key and value go through `WireText.escaped`, so each record is
/// exactly one line, and are capped (`maxMessageBytes`, `maxValueBytes`), so no record is
/// larger than a few KiB whatever arrives.
public struct JournalLogHandler: LogHandler {
    /// Longest message, in UTF-8 bytes after escaping.
    public static let maxMessageBytes = 4096
    /// Longest metadata value (and key), in UTF-8 bytes after escaping.
    public static let maxValueBytes = 512

    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level = .info
    public let label: String
    public let destination: LogDestination
    public let identifier: String

    public init(label: String, destination: LogDestination, identifier: String = "cfm") {
        (self.label, self.destination, self.identifier) = (label, destination, identifier)
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// syslog priority of a level (journald PRIORITY).
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// A journal field name: upper case, [A-Z0-9_], not starting with "_" or a digit.
    public static func fieldName(_ key: String) -> String {
        var name = String(key.uppercased().unicodeScalars.map { ("A"..."Z").contains($0) || ("0"..."9").contains($0) ? Character($0) : "_" })
        while name.hasPrefix("_") { name.removeFirst() }
        if name.isEmpty || name.first!.isNumber { name = "F" + name }
        return String(name.prefix(64))
    }

    /// The event's message and metadata (handler, provider, event; sorted by key), escaped and capped.
    func record(_ event: LogEvent) -> (message: String, metadata: [(key: String, value: String)]) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let m = event.metadata { merged.merge(m) { $1 } }
        let pairs = merged.sorted { $0.key < $1.key }.map {
            (key: WireText.escaped($0.key, maxBytes: Self.maxValueBytes), value: WireText.escaped("\($0.value)", maxBytes: Self.maxValueBytes))
        }
        return (WireText.escaped("\(event.message)", maxBytes: Self.maxMessageBytes), pairs)
    }

    /// The journal fields of an event ("NAME=value" each).
    public func fields(_ event: LogEvent) -> [String] {
        let (message, metadata) = record(event)
        var fields = [
            "MESSAGE=\(message)",
            "PRIORITY=\(Self.priority(event.level))",
            "SYSLOG_IDENTIFIER=\(identifier)",
            "CODE_FILE=\(event.file)",
            "CODE_LINE=\(event.line)",
            "CODE_FUNC=\(event.function)",
        ]
        let reserved: Set = ["MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC"]
        for (key, value) in metadata {
            let name = Self.fieldName(key)
            if !reserved.contains(name) { fields.append("\(name)=\(value)") }
        }
        return fields
    }

    public func log(event: LogEvent) {
        switch destination {
        case .journal where Self.send(fields(event)) >= 0:
            break
        case .journal, .stderr: // stderr also when the journal socket is unreachable
            FileHandle.standardError.write(Data(stderrLine(event).utf8))
        }
    }

    /// `LEVEL message key=value …` and one newline.
    public func stderrLine(_ event: LogEvent) -> String {
        let (message, metadata) = record(event)
        return "\(event.level.rawValue.uppercased()) \(message)" + metadata.map { " \($0.key)=\($0.value)" }.joined() + "\n"
    }

    /// `sd_journal_sendv` with one iovec per field.
    @discardableResult
    public static func send(_ fields: [String]) -> Int32 {
        let buffers = fields.map { Array($0.utf8) }
        let pointers = buffers.map { bytes -> UnsafeMutableRawBufferPointer in
            let p = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
            p.copyBytes(from: bytes)
            return p
        }
        defer { pointers.forEach { $0.deallocate() } }
        var iov = zip(pointers, buffers).map { iovec(iov_base: $0.baseAddress, iov_len: $1.count) }
        return sd_journal_sendv(&iov, Int32(iov.count))
    }
}
