import Foundation

/// The supervisor's side of sd_notify (what systemd does): a unix datagram socket a child
/// process reports to when its environment has NOTIFY_SOCKET=`path`. Used by `cfm demo`
/// to wait for the daemon's READY=1, and by the tests to check every message. `drain` may run
/// on another thread than `receive` (the kernel serialises the datagram queue).
public final class NotifyListener: @unchecked Sendable {
    let fd: Int32
    public let path: String

    /// Binds a datagram socket at `path` (which must not exist).
    public init(path: String) {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        precondition(fd >= 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            let bytes = Array(path.utf8)
            precondition(bytes.count < raw.count)
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        precondition(rc == 0, "bind \(path): \(errno)")
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// Discards the datagrams already waiting.
    public func drain() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT)) > 0 {}
    }

    /// Datagrams received within `timeout` seconds (stops early once `until` matches).
    public func receive(timeout: Double, until: (([String]) -> Bool)? = nil) -> [String] {
        var messages: [String] = []
        let deadline = Date(timeIntervalSinceNow: timeout)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 20) > 0 {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n > 0 { messages.append(String(decoding: buffer[0..<n], as: UTF8.self)) }
            }
            if let until, until(messages) { break }
        }
        return messages
    }
}
