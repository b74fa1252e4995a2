import CZeroMQ
import Foundation
import Logging

/// The daemon's transport security (`security:` in the config): plain ZeroMQ (the default,
/// meant for loopback or a closed cell network) or CURVE on the input and the output socket.
///
/// With CURVE the daemon is the CURVE server on both sockets, whether it binds or connects:
/// traffic is encrypted and every peer must prove a client key found in
/// `security.authorized_keys` (checked by a `ZAPHandler` on the daemon's context).
/// Peers need the server's public key (`NAME.key` next to the secret file).
public final class SocketSecurity: @unchecked Sendable {
    /// The socket being secured; its ZAP domain is `cfm.<role>` (named in refusal logs).
    public enum Role: String, Sendable { case input, output }

    private let serverKeys: CurveKeyPair?
    private let logger: Logger
    /// The ZAP handler (nil when CURVE is off).
    public let handler: ZAPHandler?

    /// With `security.curve` on: checks libzmq for CURVE, reads the key files and starts the
    /// ZAP handler on `context` (before any socket binds or connects). Call `stop()` when the
    /// sockets are closed.
    public init(_ config: ServiceConfig, context: ZMQContext, logger: Logger) throws {
        self.logger = logger
        guard config.security.curve else { (serverKeys, handler) = (nil, nil); return }
        let keys = try Self.loadKeys(config.security)
        serverKeys = keys.server
        handler = try ZAPHandler(context: context, authorizedKeys: URL(fileURLWithPath: config.security.authorizedKeys), logger: logger,
                                 logLinesPerMinute: config.logging.errorsPerMinute)
        logger.info("CURVE on: server key \(keys.server.publicKey.z85), \(keys.authorized.count) authorized client keys in \(config.security.authorizedKeys)")
    }

    /// Reads and checks the server's key pair and the authorized client keys (start and
    /// `--check-config`): CURVE support, trusted and private files, parsable keys.
    public static func loadKeys(_ security: ServiceConfig.Security) throws -> (server: CurveKeyPair, authorized: [CurveKey: String]) {
        try CurveKeyPair.requireCurve()
        return (try CurveKeyFile.readSecret(URL(fileURLWithPath: security.secretKey)),
                try CurveKeyFile.readAuthorized(URL(fileURLWithPath: security.authorizedKeys)))
    }

    /// Makes `socket` a CURVE server authenticated through the ZAP handler (before it binds
    /// or connects). With CURVE off, a TCP endpoint that is not loopback gets a warning.
    public func secure(_ socket: ZMQSocket, as role: Role, endpoint: String) throws {
        guard let serverKeys else {
            if !Self.isLocal(endpoint) {
                logger.warning("\(role.rawValue) \(endpoint) is plain ZeroMQ on a network: anyone who reaches it can \(role == .input ? "send frames" : "read results") (security.curve: false; see docs/security.md)")
            }
            return
        }
        try socket.setOption(ZMQ_ZAP_DOMAIN, Array("cfm.\(role.rawValue)".utf8))
        // Fail closed should the handler ever be missing (a draft option: absent from some builds).
        try? socket.setOption(Self.zapEnforceDomain, Int32(1))
        try socket.setOption(ZMQ_CURVE_SERVER, Int32(1))
        try socket.setOption(ZMQ_CURVE_SECRETKEY, serverKeys.secretKey.bytes)
    }

    /// Handshakes refused since the start (unknown or malformed client keys).
    public var refusedHandshakes: Int { handler?.counts.refused ?? 0 }

    /// Stops the ZAP handler (idempotent).
    public func stop() { handler?.stop() }

    /// ZMQ_ZAP_ENFORCE_DOMAIN (a draft macro Swift does not see).
    static let zapEnforceDomain: Int32 = 93

    /// ipc://, inproc:// and TCP on a loopback address stay on this machine.
    static func isLocal(_ endpoint: String) -> Bool {
        guard endpoint.hasPrefix("tcp://") else { return endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") }
        let address = endpoint.dropFirst("tcp://".count)
        let host = address.split(separator: ";").last.map { $0.hasPrefix("[") ? String($0.prefix { $0 != "]" }.dropFirst()) : String($0.prefix { $0 != ":" }) } ?? ""
        return host.hasPrefix("127.") || host == "localhost" || host == "::1"
    }
}
