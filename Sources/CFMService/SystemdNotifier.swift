import CSystemd
import Foundation

/// The service manager protocol through libsystemd's `sd_notify` (the variadic
/// `sd_notifyf` cannot be called from Swift). Every call is a no-op outside systemd
/// (NOTIFY_SOCKET unset).
///
/// Messages leave from the notifier's own thread (`cfm-notify`), never from the caller's:
/// `sd_notify` blocks while the manager's datagram queue is full
/// (`net.unix.max_dgram_qlen`, 10 by default), so a manager that stops reading would
/// otherwise hold the daemon's supervisor — and with it stop requests and the watchdog.
/// The queue stays small because it coalesces: a newer STATUS= replaces one not sent yet
/// (and a lifecycle message carrying STATUS= replaces it too), and a WATCHDOG=1 is not
/// queued behind a WATCHDOG=1 still waiting (that one reaches the manager later than the
/// new one was asked for). READY=1, RELOADING=1, STOPPING=1 and WATCHDOG=1 are otherwise
/// sent in the order they were asked for, none dropped.
public final class SystemdNotifier: @unchecked Sendable {
    private let outbox = Outbox()

    public init() {}

    deinit { outbox.close() }

    /// NOTIFY_SOCKET is set: a service manager listens.
    public var isActive: Bool { ProcessInfo.processInfo.environment["NOTIFY_SOCKET"] != nil }

    /// Sends newline-separated `assignments` now, on the caller's thread (which it may block:
    /// see the type's comment); returns libsystemd's result (>0 sent, 0 no socket, <0 -errno).
    @discardableResult
    static func send(_ assignments: [String]) -> Int32 {
        let state = assignments.map { $0.replacingOccurrences(of: "\n", with: " ") }.joined(separator: "\n")
        return sd_notify(0, state)
    }

    /// Queues `assignments` for the notifier's thread (coalescing as the type's comment says); never waits.
    public func post(_ assignments: [String]) {
        guard isActive else { return }
        outbox.post(assignments)
    }

    public func ready(status: String? = nil) { post(["READY=1"] + (status.map { ["STATUS=\($0)"] } ?? [])) }
    public func status(_ text: String) { post(["STATUS=\(text)"]) }
    public func watchdog() { post(["WATCHDOG=1"]) }
    public func stopping(status: String? = nil) { post(["STOPPING=1"] + (status.map { ["STATUS=\($0)"] } ?? [])) }

    /// RELOADING=1 with MONOTONIC_USEC (systemd ≥ 253 requires it with Type=notify-reload).
    public func reloading() {
        post(["RELOADING=1", "MONOTONIC_USEC=\(monotonicNs() / 1000)"])
    }

    /// Waits until every queued message was handed to the manager, or the monotonic
    /// `deadline` (ns) passes. Returns whether everything was sent.
    @discardableResult
    public func flush(until deadline: UInt64) -> Bool { outbox.flush(until: deadline) }

    /// The watchdog interval the unit asked for (WATCHDOG_USEC for this PID), or nil.
    public var watchdogInterval: Double? {
        var usec: UInt64 = 0
        return sd_watchdog_enabled(0, &usec) > 0 && usec > 0 ? Double(usec) / 1e6 : nil
    }

    /// The queue and its sending thread, started at the first message. The thread holds the
    /// outbox, not the notifier: it ends once the notifier is gone and the queue is empty.
    private final class Outbox: @unchecked Sendable {
        private let condition = NSCondition()
        private var waiting: [[String]] = []
        private var sending = false
        private var closed = false
        private var started = false

        func post(_ assignments: [String]) {
            condition.lock(); defer { condition.unlock() }
            if assignments.contains(where: Self.isStatus) { waiting.removeAll { $0.allSatisfy(Self.isStatus) } }
            if !(assignments == ["WATCHDOG=1"] && waiting.last == ["WATCHDOG=1"]) { waiting.append(assignments) }
            if !started {
                started = true
                let t = Thread { [self] in run() }
                t.name = "cfm-notify"
                t.start()
            }
            condition.broadcast()
        }

        func flush(until deadline: UInt64) -> Bool {
            condition.lock(); defer { condition.unlock() }
            while !waiting.isEmpty || sending {
                let now = monotonicNs()
                if now >= deadline { return false }
                _ = condition.wait(until: Date(timeIntervalSinceNow: min(Double(deadline - now) / 1e9, 0.01)))
            }
            return true
        }

        func close() { condition.lock(); closed = true; condition.broadcast(); condition.unlock() }

        private static func isStatus(_ assignment: String) -> Bool { assignment.hasPrefix("STATUS=") }

        private func run() {
            while true {
                condition.lock()
                while waiting.isEmpty && !closed { condition.wait() }
                if waiting.isEmpty { condition.unlock(); return }
                let next = waiting.removeFirst()
                sending = true
                condition.unlock()
                SystemdNotifier.send(next)
                condition.lock(); sending = false; condition.broadcast(); condition.unlock()
            }
        }
    }
}
