import Foundation

/// A listen address `host:port` (`127.0.0.1:9464`, `[::1]:9464`, `localhost:9464`; port 0 =
/// any free port), as the `metrics.listen` key writes it.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: UInt16

    /// Parses `text`; the error says why it is not an address.
    public init(_ text: String) throws {
        guard let colon = text.lastIndex(of: ":") else { throw ListenAddressError("'\(text)' is not host:port") }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = UInt16(text[text.index(after: colon)...]) else {
            throw ListenAddressError("'\(text)' is not host:port (port 0…65535)")
        }
        (self.host, self.port) = (host, port)
    }

    public init(host: String, port: UInt16) { (self.host, self.port) = (host, port) }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

public struct ListenAddressError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// The Prometheus scrape endpoint: a small blocking HTTP/1.1 server on its own joinable
/// thread, one connection at a time. `GET /metrics` → 200 with the text exposition
/// (`text/plain; version=0.0.4`), any other path → 404, any other method → 405; every
/// response closes the connection.
///
/// A client gets `requestTimeout` seconds in all to send its request line and headers (at
/// most `maxRequestBytes`), and as long again to take the answer: one that connects and
/// sends nothing delays the next scrape by at most that, never stalls the server. The
/// thread polls a stop flag every 100 ms; `stop()` joins it and closes the socket.
public final class MetricsServer: @unchecked Sendable {
    /// Longest request head (request line + headers) read, in bytes.
    public static let maxRequestBytes = 8192

    /// The bound address (the real port when the configured one was 0).
    public let address: ListenAddress
    private let requestTimeout: Double
    private let render: @Sendable () -> [UInt8]
    private let listener: Int32
    private let lock = NSLock()
    private var stopping = false
    private var thread: ServiceThread?

    /// Binds and listens on `address`; `render` builds the exposition for each scrape (on the server thread).
    public init(address: ListenAddress, requestTimeout: Double = 1, render: @escaping @Sendable () -> [UInt8]) throws {
        (self.requestTimeout, self.render) = (requestTimeout, render)
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(address.host, String(address.port), &hints, &found)
        guard status == 0, let info = found else {
            throw ListenAddressError("metrics.listen \(address): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(found) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ListenAddressError("metrics.listen \(address): socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0, listen(fd, 16) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw ListenAddressError("metrics.listen \(address): \(reason)")
        }
        var bound = sockaddr_storage(), length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let port = bound.ss_family == sa_family_t(AF_INET6)
            ? withUnsafePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_port } }
            : withUnsafePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_port } }
        listener = fd
        self.address = ListenAddress(host: address.host, port: UInt16(bigEndian: port))
    }

    deinit { close(listener) }

    public func start() {
        let t = ServiceThread(name: "cfm-metrics") { [self] in serve() }
        thread = t
        t.start()
    }

    /// Stops accepting and joins the thread (a request in progress finishes first, within its timeouts).
    public func stop() {
        lock.lock(); stopping = true; lock.unlock()
        thread?.join()
    }

    private var isStopping: Bool { lock.lock(); defer { lock.unlock() }; return stopping }

    private func serve() {
        while !isStopping {
            var pfd = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 100) > 0 else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC) // not inherited by a child process
            handle(client)
            close(client)
        }
    }

    /// Reads one request head and answers it.
    private func handle(_ client: Int32) {
        var timeout = timeval(tv_sec: Int(requestTimeout), tv_usec: Int((requestTimeout - requestTimeout.rounded(.down)) * 1e6))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let head: String
        switch readHead(client) {
        case .head(let text): head = text
        case .tooLarge: return respond(client, status: "431 Request Header Fields Too Large", body: Array("request head too large\n".utf8))
        case .timedOut: return respond(client, status: "408 Request Timeout", body: Array("no request in time\n".utf8))
        case .closed: return
        }
        let requestLine = head.split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? ""
        let words = requestLine.split(separator: " ")
        guard words.count == 3, words[2].hasPrefix("HTTP/1.") else {
            return respond(client, status: "400 Bad Request", body: Array("bad request line\n".utf8))
        }
        let path = words[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard path == "/metrics" else { return respond(client, status: "404 Not Found", body: Array("only /metrics is served\n".utf8)) }
        guard words[0] == "GET" || words[0] == "HEAD" else {
            return respond(client, status: "405 Method Not Allowed", body: Array("only GET\n".utf8), extraHeaders: "Allow: GET, HEAD\r\n")
        }
        respond(client, status: "200 OK", body: render(), contentType: "text/plain; version=0.0.4; charset=utf-8", headOnly: words[0] == "HEAD")
    }

    private enum Head {
        /// The request line and headers, without the blank line.
        case head(String)
        /// Larger than `maxRequestBytes`.
        case tooLarge
        /// Not complete within `requestTimeout` seconds of the connection.
        case timedOut
        /// The client closed or reset the connection first.
        case closed
    }

    private func readHead(_ client: Int32) -> Head {
        let deadline = monotonicNs() + UInt64(requestTimeout * 1e9)
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1024)
        let end: [UInt8] = Array("\r\n\r\n".utf8)
        while bytes.count < Self.maxRequestBytes {
            let now = monotonicNs()
            guard now < deadline else { return .timedOut }
            var pfd = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(max(1, (deadline - now) / 1_000_000))) > 0 else { continue }
            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, min($0.count, Self.maxRequestBytes - bytes.count), 0) }
            guard n > 0 else { return .closed }
            bytes += chunk[..<n]
            if let range = bytes.firstRange(of: end) { return .head(String(decoding: bytes[..<range.lowerBound], as: UTF8.self)) }
        }
        return .tooLarge
    }

    private func respond(_ client: Int32, status: String, body: [UInt8], contentType: String = "text/plain; charset=utf-8",
                         extraHeaders: String = "", headOnly: Bool = false) {
        let head = "HTTP/1.1 \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n"
            + extraHeaders + "Connection: close\r\n\r\n"
        var message = Array(head.utf8)
        if !headOnly { message += body }
        var sent = 0
        while sent < message.count {
            let n = message[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return } // the peer left or did not read within the send timeout
            sent += n
        }
    }
}
