import CZeroMQ
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A libzmq call that failed: the operation, errno and libzmq's message.
public struct ZMQError: Error, CustomStringConvertible, Equatable {
    public var operation: String
    public var code: Int32
    public var message: String

    init(_ operation: String, code: Int32 = zmq_errno()) {
        self.operation = operation
        self.code = code
        message = String(cString: zmq_strerror(code))
    }

    /// The context was terminated: the socket must be closed.
    public var isTerminated: Bool { code == ZMQError.eterm }
    /// A non-blocking call would have blocked.
    public var wouldBlock: Bool { code == EAGAIN }
    /// A signal interrupted the call; retry.
    public var interrupted: Bool { code == EINTR }

    static let eterm: Int32 = 156_384_712 + 53 // ZMQ_HAUSNUMERO + 53 (a macro Swift does not import)

    public var description: String { "\(operation): \(message) (errno \(code))" }
}

/// A ZeroMQ context. Close every socket before the context goes away (zmq_ctx_term waits for them).
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    public init() throws {
        guard let h = zmq_ctx_new() else { throw ZMQError("zmq_ctx_new") }
        handle = h
    }

    deinit { zmq_ctx_term(handle) }

    /// libzmq's version, e.g. "4.3.4".
    public static var version: String {
        var (major, minor, patch): (Int32, Int32, Int32) = (0, 0, 0)
        zmq_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }
}

/// One ZeroMQ socket. Not thread-safe: create it, then use it from one thread only
/// (handing it over once, before its thread starts, is fine).
public final class ZMQSocket: @unchecked Sendable {
    public enum Kind: Sendable {
        case pub, sub, push, pull
        /// Request/reply (the ZAP handler serves REP).
        case req, rep

        var raw: Int32 {
            switch self {
            case .pub: ZMQ_PUB
            case .sub: ZMQ_SUB
            case .push: ZMQ_PUSH
            case .pull: ZMQ_PULL
            case .req: ZMQ_REQ
            case .rep: ZMQ_REP
            }
        }
    }

    public let kind: Kind
    private let context: ZMQContext
    private var handle: UnsafeMutableRawPointer?

    public init(_ context: ZMQContext, _ kind: Kind) throws {
        guard let h = zmq_socket(context.handle, kind.raw) else { throw ZMQError("zmq_socket") }
        (self.context, self.kind, handle) = (context, kind, h)
    }

    deinit { close() }

    /// Closes the socket (idempotent). Pending outgoing messages obey ZMQ_LINGER.
    public func close() {
        if let h = handle { zmq_close(h) }
        handle = nil
    }

    private func socket(_ op: String) throws -> UnsafeMutableRawPointer {
        guard let h = handle else { throw ZMQError(op, code: ENOTSOCK) }
        return h
    }

    public func setOption(_ option: Int32, _ value: Int32) throws {
        var v = value
        guard zmq_setsockopt(try socket("zmq_setsockopt"), option, &v, MemoryLayout<Int32>.size) == 0 else {
            throw ZMQError("zmq_setsockopt(\(option))")
        }
    }

    public func setOption(_ option: Int32, _ bytes: [UInt8]) throws {
        let h = try socket("zmq_setsockopt")
        let rc = bytes.withUnsafeBytes { zmq_setsockopt(h, option, $0.baseAddress, bytes.count) }
        guard rc == 0 else { throw ZMQError("zmq_setsockopt(\(option))") }
    }

    public func setOption(_ option: Int32, _ value: Int64) throws {
        var v = value
        guard zmq_setsockopt(try socket("zmq_setsockopt"), option, &v, MemoryLayout<Int64>.size) == 0 else {
            throw ZMQError("zmq_setsockopt(\(option))")
        }
    }

    public func receiveHighWaterMark(_ n: Int) throws { try setOption(ZMQ_RCVHWM, Int32(n)) }
    /// ZMQ_MAXMSGSIZE: a peer sending a message part longer than `bytes` is disconnected by
    /// libzmq before the part is buffered (the message is never delivered).
    public func maximumMessageSize(_ bytes: Int) throws { try setOption(ZMQ_MAXMSGSIZE, Int64(bytes)) }
    public func sendHighWaterMark(_ n: Int) throws { try setOption(ZMQ_SNDHWM, Int32(n)) }
    public func linger(milliseconds: Int) throws { try setOption(ZMQ_LINGER, Int32(milliseconds)) }
    /// SUB: receive messages whose first part starts with `prefix` ("" = everything).
    public func subscribe(_ prefix: String) throws { try setOption(ZMQ_SUBSCRIBE, Array(prefix.utf8)) }

    public func bind(_ endpoint: String) throws {
        guard zmq_bind(try socket("zmq_bind"), endpoint) == 0 else { throw ZMQError("zmq_bind(\(endpoint))") }
    }

    public func connect(_ endpoint: String) throws {
        guard zmq_connect(try socket("zmq_connect"), endpoint) == 0 else { throw ZMQError("zmq_connect(\(endpoint))") }
    }

    /// The endpoint actually bound last (resolves `tcp://127.0.0.1:*` to the ephemeral port).
    public var lastEndpoint: String {
        get throws {
            var buffer = [CChar](repeating: 0, count: 1024)
            var size = buffer.count
            guard zmq_getsockopt(try socket("zmq_getsockopt"), ZMQ_LAST_ENDPOINT, &buffer, &size) == 0 else {
                throw ZMQError("zmq_getsockopt(ZMQ_LAST_ENDPOINT)")
            }
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// Sends `parts` as one multipart message. Returns false when `wait` is false and the
    /// message could not be queued (HWM reached on a non-dropping socket).
    @discardableResult
    public func send(_ parts: [[UInt8]], wait: Bool = true) throws -> Bool {
        let h = try socket("zmq_send")
        for (i, part) in parts.enumerated() {
            var flags: Int32 = i < parts.count - 1 ? ZMQ_SNDMORE : 0
            if !wait { flags |= ZMQ_DONTWAIT }
            while true {
                let rc = part.withUnsafeBytes { zmq_send(h, $0.baseAddress, part.count, flags) }
                if rc >= 0 { break }
                let error = ZMQError("zmq_send")
                if error.interrupted { continue }
                // Only the first part can fail with EAGAIN: later parts of a message are always queued.
                if error.wouldBlock && i == 0 { return false }
                throw error
            }
        }
        return true
    }

    /// Receives one multipart message as copies of its parts; nil when `wait` is false and
    /// none is ready.
    public func receive(wait: Bool = true) throws -> [[UInt8]]? {
        try receiveMessage(wait: wait).map { message in message.withParts { $0.map { Array($0) } } }
    }

    /// Receives one multipart message without copying it: the first `keepingAtMost` parts stay
    /// in their `zmq_msg_t`s (owned by the returned message), later ones are counted and
    /// released as they arrive. nil when `wait` is false and none is ready.
    public func receiveMessage(wait: Bool = true, keepingAtMost limit: Int = .max) throws -> ReceivedMessage? {
        let h = try socket("zmq_msg_recv")
        let message = ReceivedMessage()
        let scratch = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        zmq_msg_init(scratch)
        defer { zmq_msg_close(scratch); scratch.deallocate() }
        while true {
            let keep = message.partCount < limit
            let part = keep ? message.appendEmptyPart() : scratch
            let rc = zmq_msg_recv(part, h, wait || message.partCount > 0 ? 0 : ZMQ_DONTWAIT)
            if rc < 0 {
                if keep { message.removeLastPart() }
                let error = ZMQError("zmq_msg_recv")
                if error.interrupted { continue }
                if error.wouldBlock && message.partCount == 0 { return nil }
                throw error
            }
            message.partCount += 1
            if zmq_msg_more(part) == 0 { return message }
        }
    }

    /// Waits up to `milliseconds` (-1 = forever) for a message to read.
    public func pollIn(milliseconds: Int) throws -> Bool {
        var item = zmq_pollitem_t(socket: try socket("zmq_poll"), fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
        let rc = zmq_poll(&item, 1, milliseconds)
        if rc < 0 {
            let error = ZMQError("zmq_poll")
            if error.interrupted { return false }
            throw error
        }
        return rc > 0 && (item.revents & Int16(ZMQ_POLLIN)) != 0
    }
}

/// One received multipart message whose parts stay in libzmq's buffers (`zmq_msg_t`s owned
/// here, closed at deinit). Each `zmq_msg_t` lives at a fixed heap address: libzmq keeps small
/// parts inside the struct itself, so it must never move. A frame decoded in place takes its
/// pixel parts out (`takePart`) and borrows them.
public final class ReceivedMessage {
    private var parts: [UnsafeMutablePointer<zmq_msg_t>] = []
    /// Parts the message had, including those released unread beyond the receive limit.
    public internal(set) var partCount = 0

    init() {}

    /// A message of copies of `parts`, each in a buffer libzmq allocates as it does for a part
    /// it receives: for benchmarks, tools and tests that decode as `cfm serve` does (the
    /// decoder converts and keeps pixel parts where they are, which a Swift array's storage
    /// cannot lend).
    public convenience init(copying parts: [[UInt8]]) {
        self.init()
        for bytes in parts {
            let part = appendEmptyPart()
            zmq_msg_close(part)
            // Allocation fails only when malloc does (libzmq asserts on it the same way).
            precondition(zmq_msg_init_size(part, bytes.count) == 0, "zmq_msg_init_size(\(bytes.count)): out of memory")
            if !bytes.isEmpty { bytes.withUnsafeBytes { zmq_msg_data(part).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) } }
        }
        partCount = parts.count
    }

    deinit {
        for part in parts {
            zmq_msg_close(part)
            part.deallocate()
        }
    }

    /// Parts kept (at most the receive limit).
    public var keptParts: Int { parts.count }

    /// Byte count of kept part `index`.
    public func size(of index: Int) -> Int { zmq_msg_size(parts[index]) }

    /// Calls `body` with the kept parts' bytes, valid only during the call.
    public func withParts<R, E: Error>(_ body: ([UnsafeRawBufferPointer]) throws(E) -> R) throws(E) -> R {
        let buffers = parts.map { UnsafeRawBufferPointer(start: zmq_msg_data($0), count: zmq_msg_size($0)) }
        return try withExtendedLifetime(self) { () throws(E) -> R in try body(buffers) }
    }

    /// Takes kept part `index` out of the message (`zmq_msg_move`: its bytes stay where they
    /// are); the message keeps an empty part in its place.
    func takePart(_ index: Int) -> MessagePart {
        let part = MessagePart()
        zmq_msg_move(part.message, parts[index])
        return part
    }

    func appendEmptyPart() -> UnsafeMutablePointer<zmq_msg_t> {
        let part = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        zmq_msg_init(part)
        parts.append(part)
        return part
    }

    func removeLastPart() {
        let part = parts.removeLast()
        zmq_msg_close(part)
        part.deallocate()
    }
}

/// One part taken out of a received message (`ReceivedMessage.takePart`): its bytes stay in
/// the buffer libzmq received (or allocated) them in, and go back to libzmq when the last
/// holder lets go of this object (`zmq_msg_close`). A received part's buffer belongs to its
/// receiver, who may write into it: the frame decoder converts pixels there and the frame
/// borrows them (`FramePixels`).
///
/// Sendable: it is handed from thread to thread with the frame that holds it, never used by
/// two at once (`FramePixels` copies before writing into one it shares).
public final class MessagePart: @unchecked Sendable {
    /// At a fixed heap address (a small part's bytes are inside the struct).
    fileprivate let message: UnsafeMutablePointer<zmq_msg_t>

    fileprivate init() {
        message = .allocate(capacity: 1)
        zmq_msg_init(message)
    }

    deinit {
        zmq_msg_close(message)
        message.deallocate()
    }

    /// The part's bytes, valid while this object lives.
    public var bytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: zmq_msg_data(message), count: zmq_msg_size(message))
    }
}
