import CZeroMQ
import Dispatch
import Foundation
import Logging

/// `cfm serve`: sockets, the pipeline, systemd notifications, signals, reload and drain.
///
/// Four small services, each on its own thread(s), composed by `run()` (five with metrics):
/// - the receiver owns the input socket (a `zmq_poll` loop that decodes and submits frames);
/// - the pipeline's preprocessing thread and inference workers score (`FramePipeline`);
/// - the publisher owns the output socket: results in order, heartbeats (`ResultPublisher`);
/// - the supervisor, the thread calling `run()`: watchdog, STATUS=, summaries, reload, stop;
/// - with `metrics.listen`, the scrape endpoint (`MetricsServer`), counting each result in the
///   publisher's observer (`ServiceMetrics`): started last, joined last.
///
/// Start order: publisher, workers, receiver (consumers before producers). Stop order, the
/// reverse: the receiver stops reading and is joined (its thread closes its socket), every
/// received frame is scored or shed as `dropped` by the drain deadline, the workers are
/// joined (one still in inference is given up: it owns what it uses), the publisher sends
/// what is left and is joined (its thread closes its socket), then the ZeroMQ context ends.
public final class EdgeService: @unchecked Sendable {
    /// Builds the pipeline's stages (preprocessing, one inference function per worker) for a config; the real one loads models.
    public typealias ProcessorFactory = @Sendable (ServiceConfig) throws -> FrameStages

    private let stateLock = NSLock()
    private var _config: ServiceConfig
    private var _logger: Logger
    private var _reloads = (applied: 0, refused: 0)
    /// Why the last reload was refused (cleared by an applied one): shown in STATUS=.
    private var refusedReload: String?
    /// The config in force (a reload replaces it).
    public var config: ServiceConfig { stateLock.lock(); defer { stateLock.unlock() }; return _config }
    private var logger: Logger { stateLock.lock(); defer { stateLock.unlock() }; return _logger }
    /// Reloads that were applied / refused.
    public var reloads: (applied: Int, refused: Int) { stateLock.lock(); defer { stateLock.unlock() }; return _reloads }
    public let configURL: URL?
    private let factory: ProcessorFactory
    private let notifier: SystemdNotifier
    private let flags = NSCondition()
    private var stopRequested = false
    private var reloadRequested = false
    private var receiveHeartbeat = monotonicNs()
    private var receiveStopped = false
    private var reloadInProgress = false
    private var isReloading: Bool { flags.lock(); defer { flags.unlock() }; return reloadInProgress }
    private var signalSources: [DispatchSourceSignal] = []
    private var errorLogWindow = (start: monotonicNs(), count: 0, suppressed: 0)
    private let logLock = NSLock()
    /// Bound endpoints (resolved ephemeral ports), once running.
    public private(set) var inputEndpoint: String?
    public private(set) var outputEndpoint: String?
    private var pipeline: FramePipeline?
    /// The sockets' security (CURVE keys, the ZAP handler and its refusal count), once running.
    public private(set) var security: SocketSecurity?
    /// The Prometheus scrape endpoint's bound address (`metrics.listen`), once running.
    public private(set) var metricsAddress: ListenAddress?
    /// Records scored frames (config `recording`), once running; nil = recording off.
    public private(set) var recorder: FrameRecorder?
    /// Results refused by the output in a row (publisher thread only): logged when it starts and ends.
    private var undeliveredRun = 0

    public init(config: ServiceConfig, configURL: URL? = nil, logger: Logger, notifier: SystemdNotifier = SystemdNotifier(),
                factory: @escaping ProcessorFactory = DetectorProcessing.makeProcessors) {
        (_config, self.configURL, _logger, self.notifier, self.factory) = (config, configURL, logger, notifier, factory)
    }

    // MARK: control (any thread)

    public func requestStop() { flags.lock(); stopRequested = true; flags.broadcast(); flags.unlock() }
    public func requestReload() { flags.lock(); reloadRequested = true; flags.broadcast(); flags.unlock() }

    /// SIGTERM/SIGINT → stop, SIGHUP → reload (Dispatch signal sources; default actions ignored).
    public func installSignalHandlers() {
        for (sig, action) in [(SIGTERM, requestStop), (SIGINT, requestStop), (SIGHUP, requestReload)] as [(Int32, () -> Void)] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler(handler: action)
            source.resume()
            signalSources.append(source)
        }
    }

    /// How `run` ended.
    public struct Outcome: Sendable {
        /// Every received frame was scored before the drain timeout (else the rest was published as `dropped`).
        public var drained: Bool
        /// Workers still inside a processor, given up at the drain timeout. They keep the
        /// pipeline and their detector alive, but the process must not run the libraries'
        /// exit-time teardown under them (OpenBLAS frees its buffers): see `endProcess()`.
        public var abandonedWorkers: Int
        public var stats: PipelineStats

        /// Ends a `cfm serve` process after `run` returned: normally when every thread was
        /// joined, else `_exit` (no exit-time teardown) once the output is flushed.
        public func endProcess() -> Never {
            fflush(nil)
            if abandonedWorkers > 0 { _exit(0) }
            exit(0)
        }
    }

    /// The pipeline's counters (nil before `run` started it).
    public var stats: PipelineStats? { pipeline?.snapshot }

    // MARK: run

    /// Serves until a stop is requested; then drains, joins every thread and returns.
    /// Throws only at startup (models, threshold, sockets), with a one-line reason.
    @discardableResult
    public func run() throws -> Outcome {
        let started = monotonicNs()
        let stages: FrameStages
        do { stages = try factory(config) } catch {
            throw ServiceSetupError("cannot load the model: \(error)")
        }
        let settings = config
        let context = try ZMQContext()
        let security = try SocketSecurity(config, context: context, logger: logger) // CURVE: keys + ZAP handler
        defer { security.stop() }
        self.security = security
        let input = try ZMQSocket(context, config.input.pattern == .sub ? .sub : .pull)
        let output = try ZMQSocket(context, settings.output.pattern == .push ? .push : .pub)
        do {
            try security.secure(input, as: .input, endpoint: config.input.endpoint)
            try security.secure(output, as: .output, endpoint: config.output.endpoint)
            try input.receiveHighWaterMark(config.input.receiveHwm)
            try input.maximumMessageSize(FrameCodec.Limits(config.input).maxPartBytes)
            try input.linger(milliseconds: 0)
            if config.input.pattern == .sub { try input.subscribe(config.input.topic) }
            try config.input.mode == .bind ? input.bind(config.input.endpoint) : input.connect(config.input.endpoint)
            try output.sendHighWaterMark(settings.output.sendHwm)
            if settings.output.pattern == .pub { try output.refuseWhenAnySubscriberIsFull() }
            try settings.output.mode == .bind ? output.bind(settings.output.endpoint) : output.connect(settings.output.endpoint)
            inputEndpoint = config.input.mode == .bind ? try input.lastEndpoint : config.input.endpoint
            outputEndpoint = settings.output.mode == .bind ? try output.lastEndpoint : settings.output.endpoint
        } catch {
            throw ServiceSetupError("sockets: \(error)")
        }

        let metrics = settings.metrics.listen == nil ? nil : ServiceMetrics()
        if settings.recording.directory != nil {
            let recorder = FrameRecorder(settings: settings.recording, logger: logger)
            try recorder.start()
            self.recorder = recorder
        }
        let pipeline = FramePipeline(
            options: .init(queueDepth: settings.pipeline.queueDepth, overflow: settings.pipeline.overflow, workers: settings.pipeline.inFlight),
            stages: recording(stages))
        let publisher = ResultPublisher(
            pipeline: pipeline, output: output,
            options: .init(pattern: settings.output.pattern, topicPrefix: settings.output.topicPrefix, includeMaps: settings.output.publishMaps,
                           sendTimeoutMs: settings.output.sendTimeoutMs, heartbeatIntervalS: settings.output.heartbeatIntervalS),
            startedMono: started, observer: { [self] result, delivered in
                metrics?.observe(result, delivered: delivered)
                logResult(result, delivered: delivered)
            })
        self.pipeline = pipeline
        let metricsServer = try metrics.map { try serveMetrics($0, pipeline: pipeline, security: security) }
        let limits = FrameCodec.Limits(config.input)
        let receiver = ServiceThread(name: "cfm-receive") { [self] in receiveLoop(input, pipeline: pipeline, limits: limits) }
        publisher.start()
        pipeline.start()
        receiver.start()
        metricsServer?.start()

        let watchdogInterval = settings.watchdog.enabled ? notifier.watchdogInterval : nil
        let tierName = settings.model.tier?.rawValue ?? "from the bundle's manifest"
        let banner = "cfm serving: \(settings.input.pattern.rawValue) \(settings.input.mode.rawValue) \(inputEndpoint ?? "") → "
            + "\(settings.output.pattern.rawValue) \(outputEndpoint ?? ""), tier \(tierName), "
            + "queue \(settings.pipeline.queueDepth) \(settings.pipeline.overflow.rawValue), "
            + "ready in \(String(format: "%.1f", Double(monotonicNs() - started) / 1e9)) s"
            + (watchdogInterval.map { String(format: ", watchdog %.1f s", $0) } ?? "")
            + (metricsAddress.map { ", metrics http://\($0)/metrics" } ?? "")
        logger.info("\(banner)", metadata: LifecycleEvent.ready.metadata.merging(settings.model.tier.map { ["cfm_tier": "\($0.rawValue)"] } ?? [:]) { $1 })
        notifier.ready(status: statusLine(pipeline.snapshot, fps: 0))

        supervise(pipeline, publisher: publisher, watchdogInterval: watchdogInterval)
        return stop(receiver: receiver, pipeline: pipeline, publisher: publisher, metricsServer: metricsServer)
    }

    /// The scrape endpoint that `metrics.listen` names, bound (not yet started): a taken port fails the start.
    private func serveMetrics(_ metrics: ServiceMetrics, pipeline: FramePipeline, security: SocketSecurity) throws -> MetricsServer {
        do {
            let server = try MetricsServer(address: try ListenAddress(config.metrics.listen ?? "")) { [self] in
                metrics.exposition(.init(stats: pipeline.snapshot, reloads: reloads,
                                         refusedPeers: security.handler != nil ? security.refusedHandshakes : nil, config: config))
            }
            metricsAddress = server.address
            return server
        } catch {
            throw ServiceSetupError("metrics: \(error)")
        }
    }

    /// The stop sequence, in the reverse order of the start (see the type's comment); the
    /// scrape endpoint last, so the drain can be watched.
    private func stop(receiver: ServiceThread, pipeline: FramePipeline, publisher: ResultPublisher, metricsServer: MetricsServer?) -> Outcome {
        notifier.stopping(status: "draining")
        let settings = config
        let deadline = monotonicNs() + UInt64(settings.pipeline.drainTimeoutS * 1e9)
        flags.lock()
        receiveStopped = true
        flags.unlock()
        // The receiver returns at its next poll, unless it waits inside submit (overflow
        // block, or the output behind): then the drain's shedding releases it.
        receiver.join(until: deadline)
        let before = pipeline.snapshot
        var drained = pipeline.drain(until: deadline)
        receiver.join()
        // A frame the receiver submitted after the deadline is shed too.
        drained = pipeline.drain(until: deadline) && drained
        pipeline.closeIntake()
        let abandoned = pipeline.stopWorkers(joinUntil: monotonicNs() + 200_000_000)
        publisher.finish(flushUntil: monotonicNs() + UInt64(settings.output.lingerMs) * 1_000_000)
        publisher.join()
        metricsServer?.stop()
        recorder?.finish(until: monotonicNs() + 2_000_000_000)
        let after = pipeline.snapshot
        let forced = drained ? "" : " (drain timeout: the rest published as dropped"
            + (abandoned > 0 ? ", \(abandoned) worker(s) given up in inference)" : ")")
        logger.info("cfm stopped: drained \(after.published - before.published) frames\(forced); \(summary(after))",
                    metadata: LifecycleEvent.stopped.metadata)
        // STOPPING=1 and the last STATUS= leave before the process does, unless the manager stopped reading.
        notifier.flush(until: monotonicNs() + 1_000_000_000)
        return Outcome(drained: drained, abandonedWorkers: abandoned, stats: after)
    }

    private func receiveLoop(_ socket: ZMQSocket, pipeline: FramePipeline, limits: FrameCodec.Limits) {
        defer { socket.close() }
        while true {
            flags.lock()
            receiveHeartbeat = monotonicNs()
            let stop = receiveStopped
            flags.unlock()
            if stop { return }
            do {
                guard try socket.pollIn(milliseconds: 100) else { continue }
                // Drain what is readable now, then look at the stop flag again.
                for _ in 0..<64 {
                    guard let message = try socket.receiveMessage(wait: false, keepingAtMost: FrameCodec.partCount) else { break }
                    let received = wallClockNs(), mono = monotonicNs()
                    do {
                        pipeline.submit(try FrameCodec.decode(message, limits: limits, buffers: pipeline.frameBuffers), receivedNs: received, receivedMono: mono)
                    } catch {
                        pipeline.submitInvalid(error, receivedNs: received, receivedMono: mono)
                    }
                }
            } catch let error as ZMQError where error.isTerminated {
                return
            } catch {
                logger.error("receive: \(error)")
                usleep(100_000)
            }
        }
    }

    private func supervise(_ pipeline: FramePipeline, publisher: ResultPublisher, watchdogInterval: Double?) {
        var lastStatus = monotonicNs(), lastSummary = monotonicNs(), lastWatchdog = UInt64(0)
        var lastPublished = 0, fps = 0.0
        let watchdogEvery = UInt64((watchdogInterval ?? 0) / 2 * 1e9)
        while true {
            flags.lock()
            if !stopRequested && !(reloadRequested && !reloadInProgress) { _ = flags.wait(until: Date(timeIntervalSinceNow: 0.1)) }
            let stop = stopRequested
            // A reload requested while one runs waits for it (requests are applied in order, never lost).
            let reload = reloadRequested && !reloadInProgress
            if reload { reloadRequested = false; reloadInProgress = true }
            let receiverAge = Double(monotonicNs() &- receiveHeartbeat) / 1e9
            flags.unlock()
            if stop {
                while isReloading { usleep(10_000) }
                return
            }
            if reload {
                // Loading models takes seconds: do it beside the supervisor so the watchdog stays fed.
                let t = Thread { [self] in
                    self.reload(pipeline)
                    flags.lock(); reloadInProgress = false; flags.broadcast(); flags.unlock()
                }
                t.name = "cfm-reload"
                t.start()
            }

            let now = monotonicNs(), settings = config
            let statusEvery = UInt64(settings.watchdog.statusIntervalS * 1e9)
            if watchdogInterval != nil, now &- lastWatchdog >= watchdogEvery {
                // Feed the watchdog only while every service makes progress: a stalled worker,
                // receiver or publisher lets systemd restart the service. A receiver waiting
                // inside the pipeline and a publisher waiting for its PUSH consumer are not stalled.
                let stall = settings.watchdog.stallTimeoutS
                if pipeline.isHealthy(stallTimeout: stall, now: now), publisher.isHealthy(stallTimeout: stall, now: now),
                   receiverAge < max(stall, 2) || pipeline.isIntakeWaiting {
                    notifier.watchdog()
                    lastWatchdog = now
                } else if now &- lastWatchdog >= 2 * watchdogEvery {
                    logger.warning("pipeline stalled: not feeding the watchdog")
                    lastWatchdog = now
                }
            }
            if now &- lastStatus >= statusEvery {
                let s = pipeline.snapshot
                fps = Double(s.published - lastPublished) / (Double(now - lastStatus) / 1e9)
                lastPublished = s.published
                lastStatus = now
                notifier.status(statusLine(s, fps: fps))
            }
            if settings.logging.summaryIntervalS > 0, Double(now - lastSummary) / 1e9 >= settings.logging.summaryIntervalS {
                lastSummary = now
                logger.info("summary: \(summary(pipeline.snapshot)), \(String(format: "%.2f", fps)) fps")
            }
        }
    }

    /// SIGHUP: re-read the config and the model; a bad one is refused and the old one keeps
    /// serving. READY=1 ends the reload either way (systemd waits for it after RELOADING=1);
    /// a refusal is told in STATUS= ("reload refused: <reason>", until a reload applies) and
    /// in the log. The unit's ExecReload= runs `--check-config` first, so a config that
    /// fails that check fails `systemctl reload` before the daemon is signalled.
    private func reload(_ pipeline: FramePipeline) {
        notifier.reloading()
        defer { notifier.ready(status: statusLine(pipeline.snapshot, fps: 0)) }
        guard let configURL else {
            logger.notice("reload: no config file, nothing to re-read")
            return
        }
        do {
            var fresh = try ServiceConfig.load(configURL)
            var restartOnly: [String] = []
            if fresh.input != config.input { restartOnly.append("input"); fresh.input = config.input }
            if fresh.output != config.output { restartOnly.append("output"); fresh.output = config.output }
            if fresh.pipeline != config.pipeline { restartOnly.append("pipeline"); fresh.pipeline = config.pipeline }
            if fresh.security != config.security { restartOnly.append("security"); fresh.security = config.security }
            if fresh.metrics != config.metrics { restartOnly.append("metrics"); fresh.metrics = config.metrics }
            if fresh.recording != config.recording { restartOnly.append("recording"); fresh.recording = config.recording }
            pipeline.replaceStages(recording(try factory(fresh)))
            stateLock.lock()
            _config = fresh
            _logger.logLevel = fresh.logLevel
            _reloads.applied += 1
            refusedReload = nil
            stateLock.unlock()
            let note = restartOnly.isEmpty ? "" : "; changes to \(restartOnly.joined(separator: ", ")) need a restart and were not applied"
            logger.notice("reloaded \(configURL.path): tier \(fresh.model.tier?.rawValue ?? "from the bundle's manifest"), bundle \(fresh.model.bundle)\(note)",
                          metadata: LifecycleEvent.reloadApplied.metadata)
        } catch {
            let reason = "\(error)".replacingOccurrences(of: "\n", with: " ")
            stateLock.lock(); _reloads.refused += 1; refusedReload = reason; stateLock.unlock()
            logger.error("reload refused, the previous config and model keep serving: \(reason)", metadata: LifecycleEvent.reloadRefused.metadata)
        }
    }

    /// The stages, each inference also offering its scored frame to the recorder (when
    /// recording is on): a non-blocking hand-off on the worker thread, after scoring.
    private func recording(_ stages: FrameStages) -> FrameStages {
        guard let recorder else { return stages }
        return stages.followingInference { frame, inference in recorder.offer(frame, verdict: inference.verdict) }
    }

    // MARK: reporting

    /// STATUS=: the counters, after the reason of a refused reload while the previous config serves.
    func statusLine(_ s: PipelineStats, fps: Double) -> String {
        stateLock.lock(); let refused = refusedReload; stateLock.unlock()
        return (refused.map { "reload refused: \($0) (the previous config keeps serving); " } ?? "")
            + String(format: "frames %d, %.2f fps, pass %d, reject %d, error %d, dropped %d, undelivered %d, p50 %.0f ms, p99 %.0f ms",
                     s.published, fps, s.passed, s.rejected, s.errors, s.dropped, s.undelivered, s.p50Ms, s.p99Ms)
            + refusedPeers
    }

    /// CURVE handshakes the ZAP handler refused (unknown or malformed client keys), when CURVE is on.
    private var refusedPeers: String {
        guard let security, security.handler != nil else { return "" }
        return ", refused peers \(security.refusedHandshakes)"
    }

    func summary(_ s: PipelineStats) -> String {
        "received \(s.received), published \(s.published), undelivered \(s.undelivered), pass \(s.passed), reject \(s.rejected), error \(s.errors)"
            + (s.errorCodes.isEmpty ? "" : " (" + s.errorCodes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")")
            + ", dropped \(s.dropped), p50 \(String(format: "%.1f", s.p50Ms)) ms, p99 \(String(format: "%.1f", s.p99Ms)) ms" + refusedPeers
            + recordingCounts
    }

    /// Frames recorded and skipped (the writer was behind), when recording is on.
    private var recordingCounts: String {
        guard let counts = recorder?.snapshot else { return "" }
        return ", recorded \(counts.recorded)" + (counts.skipped > 0 ? " (skipped \(counts.skipped))" : "") + (counts.capped ? " (cap reached)" : "")
    }

    /// Rejects at NOTICE, passes at INFO when `logging.log_passes`, errors at WARNING (at most
    /// `errors_per_minute`), the rest at DEBUG; a run of results the output refused at WARNING when it starts and NOTICE when it ends.
    /// Called on the publisher thread.
    private func logResult(_ r: FrameResult, delivered: Bool) {
        if !delivered && undeliveredRun == 0 {
            logger.warning("results undelivered: the output is full (\(config.output.pattern == .pub ? "a subscriber is not reading" : "the consumer is gone")); counting them")
        } else if delivered && undeliveredRun > 0 {
            logger.notice("results flow again after \(undeliveredRun) undelivered")
        }
        undeliveredRun = delivered ? 0 : undeliveredRun + 1
        var metadata: Logger.Metadata = [
            "frame_id": "\(r.frameId ?? "")", "verdict": "\(r.verdict.rawValue)",
            "latency_ms": "\(String(format: "%.1f", r.latencyMs))",
        ]
        if let s = r.score { metadata["score"] = "\(s)" }
        if let t = r.tier { metadata["cfm_tier"] = "\(t)" }
        switch r.verdict {
        case .reject where config.logging.logRejects:
            logger.notice("reject \(r.frameId ?? "") score \(String(format: "%.4f", r.score ?? 0)) > \(String(format: "%.4f", r.threshold ?? 0))",
                          metadata: metadata)
        case .pass where config.logging.logPasses:
            logger.info("pass \(r.frameId ?? "") score \(String(format: "%.4f", r.score ?? 0)) <= \(String(format: "%.4f", r.threshold ?? 0))",
                        metadata: metadata)
        case .error, .dropped:
            metadata["error_code"] = "\(r.error?.code.rawValue ?? "")"
            logLock.lock()
            let now = monotonicNs()
            if now &- errorLogWindow.start > 60_000_000_000 {
                if errorLogWindow.suppressed > 0 {
                    logger.warning("\(errorLogWindow.suppressed) more frame errors/drops in the last minute were not logged")
                }
                errorLogWindow = (now, 0, 0)
            }
            let allowed = errorLogWindow.count < config.logging.errorsPerMinute
            if allowed { errorLogWindow.count += 1 } else { errorLogWindow.suppressed += 1 }
            logLock.unlock()
            if allowed {
                logger.warning("\(r.verdict.rawValue) \(r.frameId ?? "<no id>"): \(r.error?.description ?? "")", metadata: metadata)
            }
        default:
            logger.debug("\(r.verdict.rawValue) \(r.frameId ?? "")", metadata: metadata)
        }
    }
}
