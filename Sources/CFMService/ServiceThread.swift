import Foundation

/// A named thread that can be joined (Foundation's `Thread` cannot): the daemon's services
/// (receiver, pipeline workers, publisher) each run on one, and the supervisor joins them
/// in a fixed order before their sockets and state go away.
final class ServiceThread: @unchecked Sendable {
    /// Set by the thread when its body has returned.
    private final class Completion: @unchecked Sendable {
        let condition = NSCondition()
        var finished = false
    }

    private let thread: Thread
    private let completion = Completion()

    /// `stackSize` in bytes (0 = the platform default).
    init(name: String, stackSize: Int = 0, body: @escaping @Sendable () -> Void) {
        let completion = self.completion
        thread = Thread {
            body()
            completion.condition.lock()
            completion.finished = true
            completion.condition.broadcast()
            completion.condition.unlock()
        }
        thread.name = name
        if stackSize > 0 { thread.stackSize = stackSize }
    }

    func start() { thread.start() }

    /// Waits until the body has returned or the monotonic `deadline` (ns; nil = forever)
    /// passes. Returns whether it returned.
    @discardableResult
    func join(until deadline: UInt64? = nil) -> Bool {
        completion.condition.lock(); defer { completion.condition.unlock() }
        while !completion.finished {
            guard let deadline else { completion.condition.wait(); continue }
            let now = monotonicNs()
            if now >= deadline { return false }
            // NSCondition waits on wall time: wake at least every 10 ms to re-check the monotonic deadline.
            _ = completion.condition.wait(until: Date(timeIntervalSinceNow: min(Double(deadline - now) / 1e9, 0.01)))
        }
        return true
    }
}
