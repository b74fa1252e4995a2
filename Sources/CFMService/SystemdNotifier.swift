import CSystemd
import Foundation

/// The service manager protocol through libsystemd's `sd_notify` (the variadic
/// `sd_notifyf` cannot be called from Swift). Every call is a no-op outside systemd
/// (NOTIFY_SOCKET unset).
public struct SystemdNotifier: Sendable {
    public init() {}

    /// NOTIFY_SOCKET is set: a service manager listens.
    public var isActive: Bool { ProcessInfo.processInfo.environment["NOTIFY_SOCKET"] != nil }

    /// Sends newline-separated `assignments`; returns libsystemd's result (>0 sent, 0 no socket, <0 -errno).
    @discardableResult
    public func notify(_ assignments: [String]) -> Int32 {
        let state = assignments.map { $0.replacingOccurrences(of: "\n", with: " ") }.joined(separator: "\n")
        return sd_notify(0, state)
    }

    public func ready(status: String? = nil) { notify(["READY=1"] + (status.map { ["STATUS=\($0)"] } ?? [])) }
    public func status(_ text: String) { notify(["STATUS=\(text)"]) }
    public func watchdog() { notify(["WATCHDOG=1"]) }
    public func stopping(status: String? = nil) { notify(["STOPPING=1"] + (status.map { ["STATUS=\($0)"] } ?? [])) }

    /// RELOADING=1 with MONOTONIC_USEC (systemd ≥ 253 requires it with Type=notify-reload).
    public func reloading() {
        notify(["RELOADING=1", "MONOTONIC_USEC=\(monotonicNs() / 1000)"])
    }

    /// The watchdog interval the unit asked for (WATCHDOG_USEC for this PID), or nil.
    public var watchdogInterval: Double? {
        var usec: UInt64 = 0
        return sd_watchdog_enabled(0, &usec) > 0 && usec > 0 ? Double(usec) / 1e6 : nil
    }
}
