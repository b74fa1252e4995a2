import ArgumentParser
import CFMService
import Foundation

/// `cfm keygen --out DIR [--name NAME]`: a CURVE key pair for the daemon or one of its peers.
struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a ZeroMQ CURVE key pair: DIR/NAME.key (public, 0644) and DIR/NAME.key_secret (secret, 0600).",
        discussion: """
            The files use czmq's certificate format (pyzmq: zmq.auth.load_certificate reads them). \
            The daemon's pair: security.secret_key names NAME.key_secret, its peers get NAME.key. \
            A client's pair: its NAME.key goes into the daemon's security.authorized_keys directory. \
            See docs/security.md.
            """)

    @Option(help: "Directory for the key files (created if missing).") var out: String
    @Option(help: "Base name of the key files (who owns the key: server, line1-camera, plc, …).") var name = "cfm"

    func run() throws {
        let pair = try CurveKeyPair.generate()
        let (publicFile, secretFile) = try CurveKeyFile.write(pair, name: name, to: URL(fileURLWithPath: out))
        print("public key \(pair.publicKey.z85)")
        print("wrote \(publicFile.path) (public: give it to the peers)")
        print("wrote \(secretFile.path) (secret, mode 0600: keep it here)")
    }
}
