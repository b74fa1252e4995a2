import CZeroMQ
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A key, a key file or a key directory that cannot be used: what and why, in one line.
public struct CurveKeyError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A CURVE25519 key (public or secret): 32 bytes, written as 40 characters of Z85
/// (ZeroMQ's printable encoding, `zmq_z85_encode`).
public struct CurveKey: Sendable, Hashable, CustomStringConvertible {
    /// The raw key, 32 bytes (what ZMQ_CURVE_SECRETKEY and ZAP credentials carry).
    public let bytes: [UInt8]

    public static let byteCount = 32
    public static let z85Count = 40

    public init(bytes: [UInt8]) throws {
        guard bytes.count == Self.byteCount else { throw CurveKeyError("a CURVE key has \(Self.byteCount) bytes, not \(bytes.count)") }
        self.bytes = bytes
    }

    /// Decodes 40 Z85 characters.
    public init(z85 text: String) throws {
        let chars = Array(text.utf8)
        guard chars.count == Self.z85Count else {
            throw CurveKeyError("a Z85 CURVE key has \(Self.z85Count) characters, not \(chars.count)")
        }
        var out = [UInt8](repeating: 0, count: Self.byteCount)
        let decoded = (chars.map { CChar(bitPattern: $0) } + [0]).withUnsafeBufferPointer { zmq_z85_decode(&out, $0.baseAddress) }
        // Not echoed: it may be a secret.
        guard decoded != nil else { throw CurveKeyError("a CURVE key is not valid Z85 text") }
        bytes = out
    }

    /// Decodes the NUL-terminated Z85 text libzmq wrote into `buffer` (41 bytes).
    init(z85Buffer buffer: [CChar]) throws {
        try self.init(z85: String(decoding: buffer.prefix(Self.z85Count).map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    /// The 40-character Z85 form.
    public var z85: String {
        var out = [CChar](repeating: 0, count: Self.z85Count + 1)
        _ = zmq_z85_encode(&out, bytes, bytes.count)
        return String(decoding: out.prefix(Self.z85Count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var description: String { z85 }
}

/// A CURVE key pair. The public key is always derived from the secret one (`zmq_curve_public`),
/// so a pair read from a file cannot disagree with itself.
public struct CurveKeyPair: Sendable, Equatable {
    public let publicKey: CurveKey
    public let secretKey: CurveKey

    /// A fresh random pair (`zmq_curve_keypair`: libsodium's CSPRNG).
    public static func generate() throws -> CurveKeyPair {
        try Self.requireCurve()
        var pub = [CChar](repeating: 0, count: CurveKey.z85Count + 1), sec = pub
        guard zmq_curve_keypair(&pub, &sec) == 0 else { throw CurveKeyError("zmq_curve_keypair: \(ZMQError("zmq_curve_keypair").message)") }
        return try CurveKeyPair(secretKey: CurveKey(z85Buffer: sec))
    }

    public init(secretKey: CurveKey) throws {
        try Self.requireCurve()
        var pub = [CChar](repeating: 0, count: CurveKey.z85Count + 1)
        let rc = (Array(secretKey.z85.utf8CString)).withUnsafeBufferPointer { zmq_curve_public(&pub, $0.baseAddress) }
        guard rc == 0 else { throw CurveKeyError("zmq_curve_public: \(ZMQError("zmq_curve_public").message)") }
        (self.secretKey, publicKey) = (secretKey, try CurveKey(z85Buffer: pub))
    }

    /// libzmq can do CURVE (it was built with libsodium or tweetnacl).
    public static var isSupported: Bool { zmq_has("curve") != 0 }

    /// Refuses, with one line, a libzmq that lacks CURVE.
    public static func requireCurve() throws {
        guard isSupported else {
            throw CurveKeyError("this libzmq \(ZMQContext.version) has no CURVE support (zmq_has(\"curve\") is false): install a libzmq built with libsodium")
        }
    }
}

/// Key files in the text form czmq (`zcert_save`) and pyzmq (`zmq.auth.create_certificates`,
/// `zmq.auth.load_certificate`) use, so keys move freely between cfm and its clients:
///
///     #   ZeroMQ CURVE **Secret** Certificate      ← comment lines start with '#'
///     metadata
///         name = "line1"
///     curve
///         public-key = "<40 Z85 characters>"
///         secret-key = "<40 Z85 characters>"       ← only in NAME.key_secret
///
/// `NAME.key` holds the public key (shareable, mode 0644); `NAME.key_secret` both (mode 0600).
/// (Z85 keys may contain '#' and '=', so a key is only ever read from a `public-key =` or
/// `secret-key =` line, never from a bare line.)
public enum CurveKeyFile {
    public static let publicExtension = "key"
    public static let secretExtension = "key_secret"

    /// The keys a file holds: its public key and, in a secret file, its secret key.
    public struct Contents: Sendable, Equatable {
        public var publicKey: CurveKey
        public var secretKey: CurveKey?
    }

    /// Parses a key file's text (`file` names it in errors).
    public static func parse(_ text: String, file: String) throws -> Contents {
        var publicText: String?, secretText: String?
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            func value() -> String {
                String(line.split(separator: "=", maxSplits: 1).dropFirst().first ?? "").trimmingCharacters(in: CharacterSet(charactersIn: " \t'\""))
            }
            if line.hasPrefix("public-key") { publicText = value() }
            else if line.hasPrefix("secret-key") { secretText = value() }
        }
        do {
            let secret = try secretText.map { try CurveKey(z85: $0) }
            if let secret {
                let pair = try CurveKeyPair(secretKey: secret)
                if let publicText, try CurveKey(z85: publicText) != pair.publicKey {
                    throw CurveKeyError("public-key does not belong to secret-key")
                }
                return Contents(publicKey: pair.publicKey, secretKey: secret)
            }
            guard let publicText else { throw CurveKeyError("no public-key line") }
            return Contents(publicKey: try CurveKey(z85: publicText), secretKey: nil)
        } catch let error as CurveKeyError {
            throw CurveKeyError("\(file): \(error.description)")
        }
    }

    /// Reads `url` after `FilePermissions.requireTrusted` (a secret file must also be private).
    public static func read(_ url: URL, role: TrustedFileRole) throws -> Contents {
        try FilePermissions.requireTrusted(url, role: role)
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw CurveKeyError("\(url.path): cannot read (\(role.rawValue)): \(error.localizedDescription)")
        }
        return try parse(text, file: url.path)
    }

    /// The server's key pair from its secret file.
    public static func readSecret(_ url: URL) throws -> CurveKeyPair {
        let contents = try read(url, role: .curveSecretKey)
        guard let secret = contents.secretKey else {
            throw CurveKeyError("\(url.path): no secret-key line (security.secret_key must name a .\(secretExtension) file)")
        }
        return try CurveKeyPair(secretKey: secret)
    }

    /// Every `*.key` file of `directory` → its public key (the file name says who it is in logs).
    /// The directory and each file must be trusted; a secret file found there is refused
    /// (a client's secret does not belong on the server), and an empty directory too
    /// (no client could connect).
    public static func readAuthorized(_ directory: URL) throws -> [CurveKey: String] {
        try FilePermissions.requireTrusted(directory, role: .authorizedKeys)
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() } catch {
            throw CurveKeyError("\(directory.path): cannot list (security.authorized_keys): \(error.localizedDescription)")
        }
        var keys: [CurveKey: String] = [:]
        for name in names {
            let url = directory.appendingPathComponent(name)
            if url.pathExtension == secretExtension {
                throw CurveKeyError("\(url.path): a secret key does not belong in security.authorized_keys (copy only the client's .\(publicExtension) file)")
            }
            guard url.pathExtension == publicExtension else { continue }
            keys[try read(url, role: .authorizedKeys).publicKey] = String(name.dropLast(publicExtension.count + 1))
        }
        guard !keys.isEmpty else {
            throw CurveKeyError("\(directory.path): no *.\(publicExtension) files (security.authorized_keys): no client could connect")
        }
        return keys
    }

    /// Writes `DIR/NAME.key` (mode 0644) and `DIR/NAME.key_secret` (mode 0600, created with
    /// that mode: the secret is never readable by others, not even for a moment). Refuses to
    /// overwrite either. Returns (public file, secret file).
    @discardableResult
    public static func write(_ pair: CurveKeyPair, name: String, to directory: URL, now: Date = Date()) throws -> (URL, URL) {
        guard !name.isEmpty, !name.contains("/"), !name.hasPrefix(".") else {
            throw CurveKeyError("'\(name)' is not a key name (letters, digits, '-', '_'; no '/')")
        }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let publicURL = directory.appendingPathComponent("\(name).\(publicExtension)")
        let secretURL = directory.appendingPathComponent("\(name).\(secretExtension)")
        for url in [publicURL, secretURL] where FileManager.default.fileExists(atPath: url.path) {
            throw CurveKeyError("\(url.path) exists: not overwriting a key (remove it first)")
        }
        try create(secretURL, mode: 0o600, text: text(pair, name: name, secret: true, now: now))
        try create(publicURL, mode: 0o644, text: text(pair, name: name, secret: false, now: now))
        return (publicURL, secretURL)
    }

    /// The text of `NAME.key_secret` (`secret`) or of `NAME.key`.
    public static func text(_ pair: CurveKeyPair, name: String, secret: Bool, now: Date = Date()) -> String {
        let banner = "#   ****  Generated on \(ISO8601DateFormatter().string(from: now)) by cfm keygen  ****\n" + (secret
            ? "#   ZeroMQ CURVE **Secret** Certificate\n#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n"
            : "#   ZeroMQ CURVE Public Certificate\n#   Copy it to the peers that must accept this key (cfm: security.authorized_keys).\n\n")
        return banner + "metadata\n    name = \"\(name)\"\ncurve\n    public-key = \"\(pair.publicKey.z85)\"\n"
            + (secret ? "    secret-key = \"\(pair.secretKey.z85)\"\n" : "")
    }

    /// Creates `url` exclusively with exactly `mode` (whatever the umask) and writes `text`.
    private static func create(_ url: URL, mode: mode_t, text: String) throws {
        let fd = open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw CurveKeyError("\(url.path): cannot create: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard fchmod(fd, mode) == 0, bytes.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) == bytes.count, fsync(fd) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(url.path)
            throw CurveKeyError("\(url.path): cannot write: \(reason)")
        }
    }
}
