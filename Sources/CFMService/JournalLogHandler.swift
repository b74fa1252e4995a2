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
public struct JournalLogHandler: LogHandler {
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

    /// The journal fields of an event ("NAME=value" each).
    public func fields(_ event: LogEvent) -> [String] {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let m = event.metadata { merged.merge(m) { $1 } }
        var fields = [
            "MESSAGE=\(event.message)",
            "PRIORITY=\(Self.priority(event.level))",
            "SYSLOG_IDENTIFIER=\(identifier)",
            "CODE_FILE=\(event.file)",
            "CODE_LINE=\(event.line)",
            "CODE_FUNC=\(event.function)",
        ]
        let reserved: Set = ["MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC"]
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
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
            var merged = metadata
            if let m = event.metadata { merged.merge(m) { $1 } }
            let extra = merged.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }.joined()
            let line = "\(event.level.rawValue.uppercased()) \(event.message)\(extra)\n"
            FileHandle.standardError.write(Data(line.utf8))
        }
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
