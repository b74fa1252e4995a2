@testable import CFMService
import Foundation
import Logging
import XCTest

/// Runs /usr/bin/python3 (Debian's, with pyzmq) on `script` with `arguments`; returns stdout.
private func python(_ script: String, _ arguments: [String], in dir: TempDir) throws -> String {
    let python = "/usr/bin/python3"
    let probe = Process()
    probe.executableURL = URL(fileURLWithPath: python)
    probe.arguments = ["-c", "import zmq, sys; sys.exit(0 if zmq.has('curve') else 1)"]
    probe.standardError = FileHandle.nullDevice
    guard (try? probe.run()) != nil else { throw XCTSkip("\(python) is missing") }
    probe.waitUntilExit()
    guard probe.terminationStatus == 0 else { throw XCTSkip("pyzmq with CURVE missing (apt-get install python3-zmq)") }
    let file = dir.path("peer-\(UUID().uuidString.prefix(6)).py")
    try script.write(toFile: file, atomically: true, encoding: .utf8)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments = [file] + arguments
    let out = Pipe(), err = Pipe()
    (process.standardOutput, process.standardError) = (out, err)
    try process.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    XCTAssertEqual(process.terminationStatus, 0, errors)
    return text
}

/// pyzmq peers of the daemon: an authorised client (PUSH frames + SUB results with its own
/// key), a client with an unknown key and a plain client (no CURVE). Prints one JSON line.
private let pyzmqPeers = #"""
import json, struct, sys, time
import zmq, zmq.auth
server_public, good_secret, bad_secret, frames_ep, results_ep, count = sys.argv[1:7]
count = int(count)
server_key, _ = zmq.auth.load_certificate(server_public)
ctx = zmq.Context()

def socket(kind, secret):
    s = ctx.socket(kind)
    s.linger = 0
    if secret:
        public, secret = zmq.auth.load_certificate(secret)
        s.curve_publickey, s.curve_secretkey, s.curve_serverkey = public, secret, server_key
    return s

def subscriber(secret):
    s = socket(zmq.SUB, secret)
    s.setsockopt(zmq.SUBSCRIBE, b"result")
    s.connect(results_ep)
    return s

def frame(i, w=8, h=6):
    header = {"v": 1, "frame_id": "curve-%d" % i, "timestamp_ns": 1, "width": w, "height": h,
              "rgb": "rgb8", "xyz": "xyz_f32le", "unit": "m"}
    return [b"frame", json.dumps(header).encode(), bytes(w * h * 3), struct.pack("<%df" % (w * h * 3), *([0.5] * (w * h * 3)))]

def collect(sockets, seconds):
    got = [[] for _ in sockets]
    poller = zmq.Poller()
    for s in sockets:
        poller.register(s, zmq.POLLIN)
    deadline = time.time() + seconds
    while time.time() < deadline:
        for s, _ in poller.poll(50):
            parts = s.recv_multipart()
            if not parts[0].endswith(b".heartbeat"):  # counters, not results
                got[sockets.index(s)].append(json.loads(parts[1]))
    return got

# Unknown and plain peers first: they must see nothing of what the authorised one causes.
bad_sub, plain_sub = subscriber(bad_secret), subscriber(None)
bad_push = socket(zmq.PUSH, bad_secret)
bad_push.sndtimeo = 1000
bad_push.connect(frames_ep)
try:
    bad_push.send_multipart(frame(999))  # queued locally at most: the handshake never completes
except zmq.Again:
    pass

good_sub = subscriber(good_secret)
good_push = socket(zmq.PUSH, good_secret)
good_push.connect(frames_ep)
time.sleep(0.5)  # SUB join
for i in range(count):
    good_push.send_multipart(frame(i))
good, bad, plain = collect([good_sub, bad_sub, plain_sub], 3)
print(json.dumps({"good": [r["frame_id"] for r in good], "bad": len(bad), "plain": len(plain)}))
"""#

final class CurveTests: XCTestCase {
    /// An authorised key, a second (authorised) key made by pyzmq, and an unknown one.
    private struct Keys {
        let server: CurveKeyPair, client: CurveKeyPair, stranger: CurveKeyPair
        let serverSecret: URL, serverPublic: URL, clientSecret: URL, strangerSecret: URL, authorized: URL
    }

    private func makeKeys(_ dir: TempDir) throws -> Keys {
        let keys = URL(fileURLWithPath: dir.path("keys")), authorized = URL(fileURLWithPath: dir.path("authorized"))
        let server = try CurveKeyPair.generate(), client = try CurveKeyPair.generate(), stranger = try CurveKeyPair.generate()
        let (serverPublic, serverSecret) = try CurveKeyFile.write(server, name: "server", to: keys)
        let (clientPublic, clientSecret) = try CurveKeyFile.write(client, name: "line1", to: keys)
        let (_, strangerSecret) = try CurveKeyFile.write(stranger, name: "stranger", to: keys)
        try FileManager.default.createDirectory(at: authorized, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: clientPublic, to: authorized.appendingPathComponent("line1.key"))
        return Keys(server: server, client: client, stranger: stranger, serverSecret: serverSecret, serverPublic: serverPublic,
                    clientSecret: clientSecret, strangerSecret: strangerSecret, authorized: authorized)
    }

    func testZ85AndKeyFilesInterchangeWithPyzmq() throws {
        // Z85 of the ZeroMQ RFC 32 test vector.
        let bytes: [UInt8] = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B]
        XCTAssertEqual(try CurveKey(bytes: bytes + bytes + bytes + bytes).z85, String(repeating: "HelloWorld", count: 4))
        XCTAssertThrowsError(try CurveKey(z85: "too short"))
        XCTAssertThrowsError(try CurveKey(z85: String(repeating: "\u{7F}", count: 40)))

        let dir = TempDir()
        let pair = try CurveKeyPair.generate()
        XCTAssertEqual(try CurveKeyPair(secretKey: pair.secretKey), pair, "the public key derives from the secret one")
        let (publicFile, secretFile) = try CurveKeyFile.write(pair, name: "cam", to: URL(fileURLWithPath: dir.path("k")))
        XCTAssertEqual(try mode(publicFile), 0o644)
        XCTAssertEqual(try mode(secretFile), 0o600)
        XCTAssertEqual(try CurveKeyFile.readSecret(secretFile), pair)
        XCTAssertEqual(try CurveKeyFile.read(publicFile, role: .authorizedKeys), .init(publicKey: pair.publicKey, secretKey: nil))
        XCTAssertThrowsError(try CurveKeyFile.write(pair, name: "cam", to: URL(fileURLWithPath: dir.path("k")))) { error in
            XCTAssertTrue("\(error)".hasSuffix("cam.key exists: not overwriting a key (remove it first)"), "\(error)")
        }
        XCTAssertThrowsError(try CurveKeyFile.readSecret(publicFile)) { XCTAssertTrue("\($0)".contains("is readable by group or others (mode 0644)"), "\($0)") }
        chmod(publicFile.path, 0o600)
        XCTAssertThrowsError(try CurveKeyFile.readSecret(publicFile)) { XCTAssertTrue("\($0)".hasSuffix("cam.key: no secret-key line (security.secret_key must name a .key_secret file)"), "\($0)") }
        chmod(publicFile.path, 0o644)

        // pyzmq reads cfm's files, and cfm reads pyzmq's.
        let out = try python("""
            import sys, zmq.auth
            public, secret = zmq.auth.load_certificate(sys.argv[1])
            print(public.decode(), secret.decode())
            zmq.auth.create_certificates(sys.argv[2], "py")
            """, [secretFile.path, dir.path("k")], in: dir)
        XCTAssertEqual(out.trimmingCharacters(in: .newlines), "\(pair.publicKey.z85) \(pair.secretKey.z85)")
        let fromPython = try CurveKeyFile.parse(try String(contentsOfFile: dir.path("k/py.key_secret"), encoding: .utf8), file: "py.key_secret")
        XCTAssertEqual(try CurveKeyPair(secretKey: XCTUnwrap(fromPython.secretKey)).publicKey, fromPython.publicKey)

        // Z85 keys contain '#' and '=' (in 200 pairs, surely): files still read back exactly.
        var awkward = 0
        for _ in 0..<200 {
            let p = try CurveKeyPair.generate()
            awkward += p.publicKey.z85.hasPrefix("#") || p.secretKey.z85.hasPrefix("#") || p.secretKey.z85.contains("=") ? 1 : 0
            XCTAssertEqual(try CurveKeyFile.parse(CurveKeyFile.text(p, name: "n", secret: true), file: "s"), .init(publicKey: p.publicKey, secretKey: p.secretKey))
            XCTAssertEqual(try CurveKeyFile.parse(CurveKeyFile.text(p, name: "n", secret: false), file: "p"), .init(publicKey: p.publicKey, secretKey: nil))
        }
        XCTAssertGreaterThan(awkward, 0)

        // A public key that does not match the secret is refused.
        let other = try CurveKeyPair.generate()
        XCTAssertThrowsError(try CurveKeyFile.parse("curve\n public-key = \"\(other.publicKey.z85)\"\n secret-key = \"\(pair.secretKey.z85)\"\n", file: "x")) {
            XCTAssertEqual("\($0)", "x: public-key does not belong to secret-key")
        }
    }

    /// The ZAP handler on its own: a REQ peer sends ZAP 1.0 requests as libzmq would.
    func testZAPHandlerAnswersByTheAuthorizedKeys() throws {
        let dir = TempDir()
        let keys = try makeKeys(dir)
        let context = try ZMQContext()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let handler = try ZAPHandler(context: context, authorizedKeys: keys.authorized, logger: logger)
        defer { handler.stop() }
        let peer = try ZMQSocket(context, .req)
        try peer.linger(milliseconds: 0)
        try peer.connect(ZAPHandler.endpoint)
        defer { peer.close() }
        func ask(_ frames: [String?], credentials: [UInt8]) throws -> [String] {
            try peer.send(frames.map { Array(($0 ?? "").utf8) } + [credentials])
            XCTAssertTrue(try peer.pollIn(milliseconds: 2000))
            return try XCTUnwrap(peer.receive()).map { String(decoding: $0, as: UTF8.self) }
        }
        let request = ["1.0", "7", "cfm.input", "127.0.0.1", "", "CURVE"]
        XCTAssertEqual(try ask(request, credentials: keys.client.publicKey.bytes), ["1.0", "7", "200", "OK", "line1", ""])
        XCTAssertEqual(try ask(request, credentials: keys.stranger.publicKey.bytes), ["1.0", "7", "400", "unknown key", "", ""])
        XCTAssertEqual(try ask(["1.0", "8", "cfm.input", "127.0.0.1", "", "PLAIN", "user"], credentials: Array("pw".utf8))[2], "400")
        XCTAssertEqual(try ask(request, credentials: [1, 2, 3])[2], "400", "a credential that is no key")
        XCTAssertEqual(try ask(["2.0", "9"], credentials: [])[0...2], ["1.0", "9", "400"], "a malformed request is refused, not dropped")
        XCTAssertEqual(handler.counts, .init(accepted: 1, refused: 4))

        // Granting a key is adding its file: read at the next handshake, no restart.
        usleep(20_000) // a later ctime than the directory's creation
        try FileManager.default.copyItem(at: keys.strangerSecret.deletingPathExtension().appendingPathExtension("key"),
                                         to: keys.authorized.appendingPathComponent("stranger.key"))
        XCTAssertEqual(try ask(request, credentials: keys.stranger.publicKey.bytes)[2...4], ["200", "OK", "stranger"])
        // A directory that turns untrusted is not re-read: the keys in force stay.
        usleep(20_000)
        try FileManager.default.removeItem(at: keys.authorized.appendingPathComponent("stranger.key"))
        chmod(keys.authorized.path, 0o777)
        XCTAssertEqual(try ask(request, credentials: keys.stranger.publicKey.bytes)[2], "200")
        XCTAssertEqual(handler.authorized.count, 2)
        usleep(20_000)
        chmod(keys.authorized.path, 0o755)
        XCTAssertEqual(try ask(request, credentials: keys.stranger.publicKey.bytes)[2], "400", "revoked once the directory is trusted again")
    }

    /// One WARNING per refused peer (address + key) a minute, at most `logLinesPerMinute` lines.
    func testRefusalsAreLoggedOncePerPeerAndLimited() throws {
        let dir = TempDir()
        let keys = try makeKeys(dir)
        let lines = LogLines()
        let handler = try ZAPHandler(context: ZMQContext(), authorizedKeys: keys.authorized,
                                     logger: Logger(label: "test") { _ in CapturingLogHandler(lines) }, logLinesPerMinute: 3)
        defer { handler.stop() }
        func request(_ key: CurveKey, from address: String) -> [[UInt8]] {
            ["1.0", "1", "cfm.input", address, "", "CURVE"].map { Array($0.utf8) } + [key.bytes]
        }
        for _ in 0..<50 { _ = handler.reply(to: request(keys.stranger.publicKey, from: "10.0.0.9")) }
        XCTAssertEqual(lines.warnings, ["refused CURVE client \(keys.stranger.publicKey.z85) from 10.0.0.9 on cfm.input: key not in \(keys.authorized.path)"])
        for i in 0..<10 { _ = handler.reply(to: request(try CurveKeyPair.generate().publicKey, from: "10.0.0.\(i)")) }
        XCTAssertEqual(lines.warnings.count, 3, "\(lines.warnings)")
        XCTAssertEqual(handler.counts, .init(accepted: 0, refused: 60))
    }

    /// `cfm serve` with CURVE on against real pyzmq peers over TCP loopback.
    func testAuthorisedPeerGetsResultsUnknownKeyGetsNothingAndIsCounted() throws {
        let dir = TempDir()
        let keys = try makeKeys(dir)
        var config = ServiceConfig()
        config.input.endpoint = "tcp://127.0.0.1:*"
        config.input.pattern = .pull
        config.input.mode = .bind
        config.output.endpoint = "tcp://127.0.0.1:*"
        config.pipeline.queueDepth = 16
        config.pipeline.overflow = .block
        config.logging.journald = .off
        config.security.curve = true
        config.security.secretKey = keys.serverSecret.path
        config.security.authorizedKeys = keys.authorized.path
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let service = EdgeService(config: config, logger: logger) { _ in FrameStages(scoring: [slowScorer(0.001)]) }
        let thread = Thread { do { try service.run() } catch { XCTFail("run: \(error)") } }
        thread.start()
        XCTAssertTrue(waitUntil(10) { service.outputEndpoint != nil })
        let input = try XCTUnwrap(service.inputEndpoint), output = try XCTUnwrap(service.outputEndpoint)

        let out = try python(pyzmqPeers, [keys.serverPublic.path, keys.clientSecret.path, keys.strangerSecret.path, input, output, "5"], in: dir)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], out)
        XCTAssertEqual(report["good"] as? [String], (0..<5).map { "curve-\($0)" }, out)
        XCTAssertEqual(report["bad"] as? Int, 0, "an unknown key reads no results: \(out)")
        XCTAssertEqual(report["plain"] as? Int, 0, "a peer without CURVE reads no results: \(out)")
        let security = try XCTUnwrap(service.security)
        XCTAssertGreaterThanOrEqual(security.refusedHandshakes, 2, "the unknown key's PUSH and SUB handshakes are counted")
        XCTAssertGreaterThanOrEqual(security.handler?.counts.accepted ?? 0, 2)
        XCTAssertEqual(service.stats?.received, 5, "only the authorised peer's frames arrive, not the unknown key's")
        service.requestStop()
        XCTAssertTrue(waitUntil(10) { thread.isFinished })
    }

    func testCurveConfigIsCheckedBeforeServing() throws {
        XCTAssertThrowsError(try ServiceConfig.parse("security: {curve: true, authorized_keys: /x}", file: "c.yaml")) {
            XCTAssertTrue("\($0)".hasSuffix(": security.secret_key: must be set when security.curve is true"), "\($0)")
        }
        let dir = TempDir()
        let keys = try makeKeys(dir)
        var security = ServiceConfig.Security()
        (security.curve, security.secretKey, security.authorizedKeys) = (true, keys.serverSecret.path, keys.authorized.path)
        XCTAssertEqual(try SocketSecurity.loadKeys(security).server, keys.server)

        // A secret key others can read, a secret in the authorized directory, an empty directory.
        chmod(keys.serverSecret.path, 0o640)
        XCTAssertThrowsError(try SocketSecurity.loadKeys(security)) {
            XCTAssertEqual("\($0)", "\(keys.serverSecret.path) (CURVE secret key (security.secret_key)) is readable by group or others (mode 0640): run chmod 0600 \(keys.serverSecret.path)")
        }
        chmod(keys.serverSecret.path, 0o600)
        let leaked = keys.authorized.appendingPathComponent("line1.key_secret")
        try FileManager.default.copyItem(at: keys.clientSecret, to: leaked)
        XCTAssertThrowsError(try SocketSecurity.loadKeys(security)) { XCTAssertTrue("\($0)".contains("a secret key does not belong"), "\($0)") }
        try FileManager.default.removeItem(at: leaked)
        try FileManager.default.removeItem(at: keys.authorized.appendingPathComponent("line1.key"))
        XCTAssertThrowsError(try SocketSecurity.loadKeys(security)) { XCTAssertTrue("\($0)".contains("no client could connect"), "\($0)") }

        // The service refuses to start with the reason, and without CURVE warns about a plain network endpoint.
        var config = ServiceConfig()
        config.security = security
        let service = EdgeService(config: config, logger: Logger(label: "test")) { _ in FrameStages(scoring: [slowScorer(0)]) }
        XCTAssertThrowsError(try service.run()) { XCTAssertTrue("\($0)".contains("no client could connect"), "\($0)") }
        XCTAssertTrue(SocketSecurity.isLocal("tcp://127.0.0.1:5555"))
        XCTAssertTrue(SocketSecurity.isLocal("tcp://[::1]:5555"))
        XCTAssertTrue(SocketSecurity.isLocal("ipc:///run/cfm/in"))
        XCTAssertFalse(SocketSecurity.isLocal("tcp://0.0.0.0:5555"))
        XCTAssertFalse(SocketSecurity.isLocal("tcp://*:5555"))
        XCTAssertFalse(SocketSecurity.isLocal("tcp://127.0.0.1;192.168.1.5:5555"))
    }

    private func mode(_ url: URL) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: url.path)[.posixPermissions] as? Int) ?? -1
    }
}

/// Log lines captured by `CapturingLogHandler`.
final class LogLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [(Logger.Level, String)] = []
    func add(_ level: Logger.Level, _ message: String) { lock.lock(); lines.append((level, message)); lock.unlock() }
    var warnings: [String] { lock.lock(); defer { lock.unlock() }; return lines.filter { $0.0 == .warning }.map(\.1) }
}

struct CapturingLogHandler: LogHandler {
    let lines: LogLines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    init(_ lines: LogLines) { self.lines = lines }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        lines.add(level, message.description)
    }
}
