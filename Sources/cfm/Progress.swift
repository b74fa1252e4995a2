import CFMJobs
import Foundation

/// Progress of a long job on stderr: a redrawn bar on a terminal, plain lines otherwise
/// (journald, CI logs, pipes).
struct Progress {
    let title: String, total: Int
    private let start: Date
    private let interactive = isatty(STDERR_FILENO) != 0

    init(_ title: String, total: Int, start: Date = Date()) { (self.title, self.total, self.start) = (title, total, start) }

    /// Reports `done` of `total` with a short status text.
    func update(_ done: Int, _ status: String) {
        let elapsed = Date().timeIntervalSince(start)
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        let timing = String(format: "%.0fs elapsed, ETA %.0fs", elapsed, eta)
        if interactive {
            let width = 24, filled = total > 0 ? width * done / total : width
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            FileHandle.standardError.write(Data("\r\(title) \(bar) \(done)/\(total) \(status) \(timing)\u{1B}[K".utf8))
            if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
        } else {
            FileHandle.standardError.write(Data("\(title) \(done)/\(total) \(status) \(timing)\n".utf8))
        }
    }

    /// A job's progress handler: one display per phase, timed from the end of the previous
    /// phase (or from now, for the first).
    static func display() -> ProgressHandler {
        var current: Progress?, lastReport = Date()
        return { step in
            if current?.title != step.phase || current?.total != step.total {
                current = Progress(step.phase, total: step.total, start: lastReport)
            }
            current?.update(step.done, step.status)
            lastReport = Date()
        }
    }
}
