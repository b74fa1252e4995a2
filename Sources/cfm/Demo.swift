import ArgumentParser
import CFMData
import CFMDetector
import CFMJobs
import CFMModels
import CFMService
import Foundation

/// `cfm demo`: the whole story on this machine with nothing to download — a synthetic
/// dataset, seeded extractor weights, training on nominal parts, calibration, then every
/// test part scored with its verdict, a confusion matrix and the image-level AUROC.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the end-to-end demo (nothing to download).")

    @Option(help: "Working directory for the demo's files.") var work: String = "cfm-demo"
    @Option(help: "Pruning tier.") var tier: Tier = .small
    @Option(help: "Synthetic part class: cookie, box or gland.") var partClass: SyntheticClass = .cookie
    @Option(help: "Training epochs (3 Adam steps each: 10 parts in batches of 4).") var epochs = 60
    @Option(help: "Unmasked pixels per part and step: more steps on fewer pixels train better in the same time.")
    var pixelsPerSample = 512

    func run() throws {
        let dir = URL(fileURLWithPath: work)
        let data = dir.appendingPathComponent("data"), extractors = dir.appendingPathComponent("extractors")
        let model = dir.appendingPathComponent("model-\(tier.rawValue)")
        let classDir = data.appendingPathComponent(partClass.rawValue)
        let started = Date()
        func step(_ text: String) { print("\n== \(text) (\(Int(Date().timeIntervalSince(started))) s)") }

        step("1. synthetic dataset: \(partClass.rawValue) parts on a tilted table, 400×400 RGB + XYZ")
        let count = try SyntheticDataset.generate(.init(size: 400, seed: 0, classes: [partClass], trainCount: 10,
                                                        validationCount: 10, testCountPerType: 4), to: data)
        print("wrote \(count) samples to \(data.path)")
        step("2. seeded random extractor weights of the real size (DINO ViT-B/8, Point-MAE)")
        for file in try SeededWeightFiles.writeExtractors(seed: 0, to: extractors) { print("wrote \(file.path)") }
        step("3. train the crossmodal mappers on 10 nominal parts (tier \(tier.rawValue))")
        var training = TrainingJob.Options(data: classDir, extractors: extractors, out: model, tier: tier,
                                           cache: dir.appendingPathComponent("cache"))
        (training.epochs, training.pixelsPerSample, training.toolVersion) = (epochs, pixelsPerSample, CFM.version)
        let trained = try TrainingJob.run(training, progress: Progress.display())
        print(String(format: "wrote %@ (final loss %.4f)", model.path, trained.training.finalLoss))
        step("4. calibrate the pass/reject threshold on 10 nominal validation parts")
        var calibration = CalibrationJob.Options(data: classDir, model: model, extractors: extractors)
        calibration.falseRejectRate = 0.1
        let c = try CalibrationJob.run(calibration, progress: Progress.display())
        print(String(format: "threshold %.4f (false-reject rate %g on %d nominal parts)", c.threshold, c.falseRejectRate, c.samples))
        step("5. serve on loopback (cfm serve, ZeroMQ) and stream the test split into it (cfm replay)")
        let replay = try serveAndReplay(classDir: classDir, extractors: extractors, model: model, work: dir)
        printVerdicts(replay)
        step("6. evaluate the test split with the MVTec 3D-AD metrics (cfm eval)")
        let evaluation = try EvaluationJob.run(.init(data: classDir, scorer: .model(bundle: model, extractors: extractors),
                                                     out: dir.appendingPathComponent("eval")), progress: Progress.display())
        func show(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "n/a" }
        print("I-AUROC \(show(evaluation.report.overall.imageAUROC)) P-AUROC \(show(evaluation.report.overall.pixelAUROC)) "
              + "AUPRO@30% \(show(evaluation.report.overall.auPRO.first ?? nil))")
        step("done: maps, overlays and metrics.json in \(dir.appendingPathComponent("eval").path)")
        print("""
            Note: the extractors here are seeded random weights of the real architectures, not the pretrained
            DINO / Point-MAE ones, so the numbers above measure the machinery, not the method's accuracy.
            With the real checkpoints (cfm import, no Python needed) the same commands reproduce the paper's setting.
            """)
    }

    /// Starts `cfm serve` as a child process on loopback ports, streams the test split into it
    /// (`ReplayJob`, as `cfm replay` does), stops the daemon (SIGTERM: drain, exit 0) and
    /// returns the per-frame results.
    private func serveAndReplay(classDir: URL, extractors: URL, model: URL, work: URL) throws -> ReplayJob.Result {
        let config = work.appendingPathComponent("cfm.yaml")
        try """
            model: {extractors: \(extractors.path), bundle: \(model.path)}
            input: {endpoint: "tcp://127.0.0.1:25555", pattern: pull, mode: connect, topic: frame}
            output: {endpoint: "tcp://127.0.0.1:25556", topic_prefix: result, publish_maps: false}
            pipeline: {queue_depth: 64, overflow: block}
            logging: {journald: "off", level: warning}
            """.write(to: config, atomically: true, encoding: .utf8)
        // Supervise it as systemd would: NOTIFY_SOCKET, then wait for READY=1.
        let notifyPath = work.appendingPathComponent("notify.sock").path
        unlink(notifyPath)
        let notifications = NotifyListener(path: notifyPath)
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        daemon.arguments = ["serve", "--config", config.path]
        daemon.environment = ProcessInfo.processInfo.environment.merging(["NOTIFY_SOCKET": notifyPath]) { $1 }
        try daemon.run()
        defer {
            if daemon.isRunning { daemon.terminate() }
            daemon.waitUntilExit()
        }
        let ready = notifications.receive(timeout: 300) { $0.contains { $0.split(separator: "\n").contains("READY=1") } }
        guard daemon.isRunning, ready.contains(where: { $0.contains("READY=1") }) else {
            throw CommandFailure("cfm serve did not become ready (see its messages above)")
        }
        print("   cfm serve is ready (READY=1 over NOTIFY_SOCKET)")
        // Keep reading as systemd does: the daemon reports STATUS= every few seconds, and a
        // datagram queue nobody reads fills (net.unix.max_dgram_qlen, often 10) and blocks its
        // sd_notify — and with it the supervisor that handles SIGTERM.
        let reader = Thread { [notifications, daemon] in
            while daemon.isRunning { notifications.drain(); usleep(200_000) }
        }
        reader.start()
        // PUSH → PULL: frames wait for the connection and back-pressure holds them; no frame is lost.
        var replay = ReplayJob.Options(data: classDir)
        (replay.endpoint, replay.results, replay.pattern) = ("tcp://127.0.0.1:25555", "tcp://127.0.0.1:25556", .push)
        (replay.rate, replay.timeout) = (0, 300)
        let result = try ReplayJob.run(replay)
        Replay.printSummary(result)
        return result
    }

    /// The verdict table and confusion matrix of the replayed parts.
    private func printVerdicts(_ replay: ReplayJob.Result) {
        print("\n   part              score   verdict")
        var matrix = [[0, 0], [0, 0]]  // [defective, nominal] × [reject, pass]
        for frame in replay.frames {
            let part = frame.sample ?? frame.frameId, verdict = frame.result?.verdict
            print("   " + part.padding(toLength: 16, withPad: " ", startingAt: 0)
                + (frame.result?.score.map { String(format: "  %6.3f", Double($0)) } ?? "       -") + "  " + (verdict?.rawValue ?? "missing"))
            guard let verdict, verdict == .pass || verdict == .reject else { continue }
            matrix[part.hasPrefix(MVTec3DClass.nominal + "/") ? 1 : 0][verdict == .reject ? 0 : 1] += 1
        }
        print("\n   confusion matrix      verdict reject   verdict pass")
        print(String(format: "   defective parts      %14d %14d", matrix[0][0], matrix[0][1]))
        print(String(format: "   nominal parts        %14d %14d", matrix[1][0], matrix[1][1]))
    }
}
