import CFMData
import CFMDetector
import CFMService
import CFMTensor
import Foundation
import XCTest

/// A small valid frame: a plane at z = 0.5 m with a raised box in the middle.
func makeFrame(id: String, width: Int = 32, height: Int = 24, unit: LengthUnit = .m) -> Frame {
    var rgb = [UInt8](repeating: 0, count: width * height * 3)
    var xyz = [Float](repeating: 0, count: width * height * 3)
    for y in 0..<height {
        for x in 0..<width {
            let p = y * width + x
            rgb[3 * p] = UInt8(x * 255 / width); rgb[3 * p + 1] = UInt8(y * 255 / height); rgb[3 * p + 2] = 128
            let inside = abs(x - width / 2) < width / 4 && abs(y - height / 2) < height / 4
            xyz[3 * p] = (Float(x) - Float(width) / 2) * 0.001
            xyz[3 * p + 1] = (Float(y) - Float(height) / 2) * 0.001
            xyz[3 * p + 2] = inside ? 0.48 : 0.5
        }
    }
    if unit == .mm { xyz = xyz.map { $0 * 1000 } }
    return Frame(frameId: id, timestampNs: 42, unit: unit, rgb: RGBImage(height: height, width: width, bytes: rgb),
                 cloud: Tensor(shape: [height, width, 3], scalars: xyz))
}

/// A temporary directory removed at deinit.
final class TempDir {
    let url: URL
    init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("cfm-service-tests-\(UUID().uuidString.prefix(8))")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func endpoint(_ name: String) -> String { "ipc://" + path(name) }
}

/// Binds a unix datagram socket and points NOTIFY_SOCKET at it (what systemd does).
final class NotifyListener {
    let fd: Int32
    let path: String

    init(directory: TempDir) {
        path = directory.path("notify.sock")
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
        setenv("NOTIFY_SOCKET", path, 1)
    }

    deinit {
        unsetenv("NOTIFY_SOCKET")
        unsetenv("WATCHDOG_USEC")
        unsetenv("WATCHDOG_PID")
        close(fd)
    }

    /// Discards the datagrams already waiting.
    func drain() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT)) > 0 {}
    }

    /// Datagrams received within `timeout` seconds (stops early once `until` matches).
    func receive(timeout: Double, until: (([String]) -> Bool)? = nil) -> [String] {
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

func waitUntil(_ timeout: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date(timeIntervalSinceNow: timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(5000)
    }
    return condition()
}
