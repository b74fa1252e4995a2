import ArgumentParser
import CFMDetector
import CFMModels
import CFMService
import Foundation
import Logging

/// `cfm serve --config FILE`: the edge daemon (systemd Type=notify service).
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the edge daemon: frames in over ZeroMQ, one verdict per frame out (see config/cfm.yaml).",
        discussion: "SIGHUP re-reads the config and the model (a bad one is refused and the old one keeps serving); SIGTERM drains and exits 0.")

    @Option(help: "YAML config file (every key is optional; see config/cfm.yaml).") var config: String?
    @Flag(help: "Validate the config (keys, ranges, file permissions, model bundle, threshold, CURVE keys) and exit.") var checkConfig = false

    func run() throws {
        let url = config.map { URL(fileURLWithPath: $0) }
        let settings = try url.map(ServiceConfig.load) ?? ServiceConfig()
        if checkConfig {
            try settings.requireTrustedModelFiles()
            let (tier, threshold) = try DetectorProcessing.check(settings)
            let curve = try settings.security.curve ? SocketSecurity.loadKeys(settings.security) : nil
            print("\(config ?? "<defaults>"): OK (tier \(tier.rawValue), bundle \(settings.model.bundle), threshold \(threshold)"
                  + (settings.decision.threshold == nil ? " from calibration" : " from the config")
                  + (curve.map { ", CURVE server key \($0.server.publicKey.z85), \($0.authorized.count) client keys" } ?? ", plain ZeroMQ") + ")")
            return
        }
        let destination = LogDestination.resolve(settings.logging.journald)
        let level = settings.logLevel
        LoggingSystem.bootstrap { label in
            var handler = JournalLogHandler(label: label, destination: destination)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "cfm")
        logger.logLevel = level
        let service = EdgeService(config: settings, configURL: url, logger: logger, factory: DetectorProcessing.makeTrustedProcessors)
        service.installSignalHandlers()
        let outcome: EdgeService.Outcome
        do { outcome = try service.run() } catch {
            logger.critical("cannot start: \(error)")
            throw error
        }
        outcome.endProcess()
    }
}
