import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The ZeroMQ authentication handler (ZAP 1.0) of a CURVE server: a thread serving a REP
/// socket at `inproc://zeromq.zap.01` on the daemon's context. libzmq asks it about every
/// CURVE handshake on that context; it answers 200 for a client key found in the
/// authorized-keys directory and 400 for anything else, so an unknown key gets no
/// connection at all (the handshake fails before any frame or result is exchanged).
///
/// Request (one multipart message): version "1.0", request id, domain, address,
/// routing id, mechanism ("CURVE"), credentials (the client's 32-byte public key).
/// Reply: version "1.0", the request id, status code "200" or "400", status text,
/// user id (the key file's name: libzmq attaches it to the peer's messages as `User-Id`),
/// metadata (empty).
///
/// Refusals are counted (`counts`) and logged at WARNING, one line per peer (address and
/// key) per minute and at most `logLinesPerMinute` lines a minute; the rest are summed up
/// in one line when the next minute starts.
///
/// The directory is read again at the next handshake after it changes (its ctime: adding,
/// removing or renaming a key file, or a `chmod` of the directory): keys can be granted and
/// revoked without a restart (connections already made stay up). If the new contents are
/// refused (an untrusted file, a secret key, no key left) the previous keys stay in force
/// and the reason is logged.
public final class ZAPHandler: @unchecked Sendable {
    public static let endpoint = "inproc://zeromq.zap.01"

    /// Handshakes answered since the start.
    public struct Counts: Sendable, Equatable {
        public var accepted = 0
        public var refused = 0
    }

    private let directory: URL
    private let logger: Logger
    private let logLinesPerMinute: Int
    private let lock = NSLock()
    private var keys: [CurveKey: String]
    private var directoryChange: timespec
    private var _counts = Counts()
    private var stopping = false
    private let finished = DispatchSemaphore(value: 0)
    private var thread: Thread?
    /// Log limiting (handler thread only): the minute's start, lines written, peers seen, refusals not logged.
    private var logWindow = (start: monotonicNs(), lines: 0, peers: Set<String>(), unlogged: 0)

    /// Reads `directory` (`CurveKeyFile.readAuthorized`), binds the ZAP endpoint on
    /// `context` and starts serving. Bind it before any CURVE socket of the context
    /// binds or connects; call `stop()` before the context goes away.
    public init(context: ZMQContext, authorizedKeys directory: URL, logger: Logger, logLinesPerMinute: Int = 20) throws {
        (self.directory, self.logger, self.logLinesPerMinute) = (directory, logger, logLinesPerMinute)
        keys = try CurveKeyFile.readAuthorized(directory)
        directoryChange = Self.changeTime(directory)
        let socket = try ZMQSocket(context, .rep)
        try socket.linger(milliseconds: 0)
        try socket.bind(Self.endpoint)
        let thread = Thread { [self] in serve(socket) }
        thread.name = "cfm-zap"
        self.thread = thread
        thread.start()
    }

    public var counts: Counts { lock.lock(); defer { lock.unlock() }; return _counts }

    /// The client keys in force → their names.
    public var authorized: [CurveKey: String] { lock.lock(); defer { lock.unlock() }; return keys }

    /// Stops serving and closes the ZAP socket (idempotent). Handshakes after this fail.
    public func stop() {
        lock.lock()
        let wasRunning = thread != nil && !stopping
        stopping = true
        lock.unlock()
        if wasRunning { finished.wait() }
    }

    private var isStopping: Bool { lock.lock(); defer { lock.unlock() }; return stopping }

    private func serve(_ socket: ZMQSocket) {
        defer { socket.close(); finished.signal() }
        while !isStopping {
            do {
                guard try socket.pollIn(milliseconds: 100), let request = try socket.receive(wait: false) else { continue }
                try socket.send(reply(to: request))
            } catch let error as ZMQError where error.isTerminated {
                return
            } catch {
                logger.error("ZAP handler: \(error)")
                usleep(100_000)
            }
        }
    }

    /// The reply frames for one request (counts and logs the decision).
    func reply(to request: [[UInt8]]) -> [[UInt8]] {
        func answer(_ id: [UInt8], _ code: String, _ text: String, user: String = "") -> [[UInt8]] {
            [Array("1.0".utf8), id, Array(code.utf8), Array(text.utf8), Array(user.utf8), []]
        }
        let id = request.count > 1 ? request[1] : []
        guard request.count >= 7, request[0] == Array("1.0".utf8) else {
            refused(domain: "?", address: "?", key: nil, reason: "malformed ZAP request (\(request.count) frames)")
            return answer(id, "400", "malformed request")
        }
        let domain = String(decoding: request[2], as: UTF8.self), address = String(decoding: request[3], as: UTF8.self)
        let mechanism = String(decoding: request[5], as: UTF8.self)
        guard mechanism == "CURVE", let key = try? CurveKey(bytes: request[6]) else {
            refused(domain: domain, address: address, key: nil, reason: "mechanism \(mechanism.prefix(16)) is not CURVE")
            return answer(id, "400", "CURVE required")
        }
        refreshKeys()
        lock.lock()
        let name = keys[key]
        if name != nil { _counts.accepted += 1 }
        lock.unlock()
        guard let name else {
            refused(domain: domain, address: address, key: key, reason: "key not in \(directory.path)")
            return answer(id, "400", "unknown key")
        }
        logger.debug("accepted CURVE client \(name) from \(address) on \(domain)")
        return answer(id, "200", "OK", user: name)
    }

    private func refused(domain: String, address: String, key: CurveKey?, reason: String) {
        lock.lock(); _counts.refused += 1; lock.unlock()
        let now = monotonicNs()
        if now &- logWindow.start >= 60_000_000_000 {
            if logWindow.unlogged > 0 {
                logger.warning("\(logWindow.unlogged) more refused CURVE handshakes in the last minute were not logged")
            }
            logWindow = (now, 0, [], 0)
        }
        let peer = "\(address) \(key?.z85 ?? "-")"
        guard logWindow.lines < logLinesPerMinute, logWindow.peers.insert(peer).inserted else {
            logWindow.unlogged += 1
            return
        }
        logWindow.lines += 1
        logger.warning("refused CURVE client \(key?.z85 ?? "-") from \(address) on \(domain): \(reason)")
    }

    /// Re-reads the directory if it changed since the last read.
    private func refreshKeys() {
        let change = Self.changeTime(directory)
        lock.lock()
        let same = change.tv_sec == directoryChange.tv_sec && change.tv_nsec == directoryChange.tv_nsec
        directoryChange = change
        lock.unlock()
        if same { return }
        do {
            let fresh = try CurveKeyFile.readAuthorized(directory)
            lock.lock(); keys = fresh; lock.unlock()
            logger.notice("authorized CURVE keys re-read from \(directory.path): \(fresh.count) keys")
        } catch {
            logger.error("authorized CURVE keys not re-read, the previous \(authorized.count) stay in force: \(error)")
        }
    }

    /// The directory's ctime (changes with its entries and its mode); zero if it is gone.
    private static func changeTime(_ url: URL) -> timespec {
        var s = stat()
        return stat(url.path, &s) == 0 ? s.st_ctim : timespec()
    }
}
