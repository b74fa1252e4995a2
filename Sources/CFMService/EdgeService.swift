import CZeroMQ
import Dispatch
import Foundation
import Logging

/// `cfm serve`: sockets, the pipeline, systemd notifications, signals, reload and drain.
///
/// Threads: the receive thread owns the input socket (a `zmq_poll` loop that decodes and
/// submits frames), the pipeline's worker threads score, its publisher thread owns the
/// output socket, and the thread calling `run()` supervises (watchdog, STATUS=, summaries,
/// reload, stop).
public final class EdgeService: @unchecked Sendable {
    /// Builds the processing functions (one per worker) for a config; the real one loads models.
    public typealias ProcessorFactory = @Sendable (ServiceConfig) throws -> [FramePipeline.Processor]

    private let stateLock = NSLock()
    private var _config: ServiceConfig
    private var _logger: Logger
    private var _reloads = (applied: 0, refused: 0)
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

    /// The pipeline's counters (nil before `run` started it).
    public var stats: PipelineStats? { pipeline?.snapshot }

    // MARK: run

    /// Serves until a stop is requested; then drains and returns. Throws only at startup
    /// (models, threshold, sockets), with a one-line reason.
    public func run() throws {
        let started = monotonicNs()
        let processors: [FramePipeline.Processor]
        do { processors = try factory(config) } catch {
            throw ServiceSetupError("cannot load the model: \(error)")
        }
        let context = try ZMQContext()
        let input = try ZMQSocket(context, config.input.pattern == .sub ? .sub : .pull)
        let output = try ZMQSocket(context, .pub)
        do {
            try input.receiveHighWaterMark(config.input.receiveHwm)
            try input.maximumMessageSize(FrameCodec.Limits(config.input).maxPartBytes)
            try input.linger(milliseconds: 0)
            if config.input.pattern == .sub { try input.subscribe(config.input.topic) }
            try config.input.mode == .bind ? input.bind(config.input.endpoint) : input.connect(config.input.endpoint)
            try output.sendHighWaterMark(config.output.sendHwm)
            try output.linger(milliseconds: config.output.lingerMs)
            try config.output.mode == .bind ? output.bind(config.output.endpoint) : output.connect(config.output.endpoint)
            inputEndpoint = config.input.mode == .bind ? try input.lastEndpoint : config.input.endpoint
            outputEndpoint = config.output.mode == .bind ? try output.lastEndpoint : config.output.endpoint
        } catch {
            throw ServiceSetupError("sockets: \(error)")
        }

        let prefix = config.output.topicPrefix, maps = config.output.publishMaps
        let pipeline = FramePipeline(
            options: .init(queueDepth: config.pipeline.queueDepth, overflow: config.pipeline.overflow, workers: config.pipeline.inFlight),
            processors: processors,
            publish: { [self] result in
                do { try output.send(FrameCodec.encode(result, topicPrefix: prefix, includeMap: maps)) } catch {
                    logger.error("cannot publish a result: \(error)", metadata: ["frame_id": "\(result.frameId ?? "")"])
                }
                logResult(result)
            })
        self.pipeline = pipeline
        pipeline.start()

        let limits = FrameCodec.Limits(config.input)
        let receiver = Thread { [self] in receiveLoop(input, pipeline: pipeline, limits: limits) }
        receiver.name = "cfm-receive"
        receiver.start()

        let watchdogInterval = config.watchdog.enabled ? notifier.watchdogInterval : nil
        let banner = "cfm serving: \(config.input.pattern.rawValue) \(config.input.mode.rawValue) \(inputEndpoint ?? "") → pub \(outputEndpoint ?? ""), tier \(config.model.tier.rawValue), queue \(config.pipeline.queueDepth) \(config.pipeline.overflow.rawValue), ready in \(String(format: "%.1f", Double(monotonicNs() - started) / 1e9)) s" + (watchdogInterval.map { String(format: ", watchdog %.1f s", $0) } ?? "")
        logger.info("\(banner)", metadata: ["cfm_tier": "\(config.model.tier.rawValue)"])
        notifier.ready(status: statusLine(pipeline.snapshot, fps: 0))

        supervise(pipeline, watchdogInterval: watchdogInterval)

        // Stop: no more input, drain what was received, flush the results.
        notifier.stopping(status: "draining")
        flags.lock()
        receiveStopped = true
        flags.unlock()
        // Bounded: with overflow block and a stalled worker the receive thread cannot finish.
        let receiverDeadline = monotonicNs() + UInt64(max(config.pipeline.drainTimeoutS, 1) * 1e9)
        while !receiver.isFinished && monotonicNs() < receiverDeadline { usleep(1000) }
        let before = pipeline.snapshot
        let clean = pipeline.drain(timeout: config.pipeline.drainTimeoutS)
        let after = pipeline.snapshot
        logger.info("cfm stopped: drained \(after.published - before.published) frames\(clean ? "" : " (drain timeout: the rest published as dropped)"); \(summary(after))")
        output.close() // lingers up to output.linger_ms to flush the last results
        input.close()
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
                        pipeline.submit(try FrameCodec.decode(message, limits: limits), receivedNs: received, receivedMono: mono)
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

    private func supervise(_ pipeline: FramePipeline, watchdogInterval: Double?) {
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
            let receiverAge = monotonicNs() &- receiveHeartbeat
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
                // Feed the watchdog only while every stage makes progress: a stalled worker
                // (or receive/publish thread) lets systemd restart the service.
                if pipeline.isHealthy(stallTimeout: settings.watchdog.stallTimeoutS, now: now),
                   Double(receiverAge) / 1e9 < max(settings.watchdog.stallTimeoutS, 2) {
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

    /// SIGHUP: re-read the config and the model; a bad one is refused and the old one keeps serving.
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
            let processors = try factory(fresh)
            pipeline.replaceProcessors(processors)
            stateLock.lock()
            _config = fresh
            _logger.logLevel = fresh.logLevel
            _reloads.applied += 1
            stateLock.unlock()
            let note = restartOnly.isEmpty ? "" : "; changes to \(restartOnly.joined(separator: ", ")) need a restart and were not applied"
            logger.notice("reloaded \(configURL.path): tier \(fresh.model.tier.rawValue), bundle \(fresh.model.bundle)\(note)")
        } catch {
            stateLock.lock(); _reloads.refused += 1; stateLock.unlock()
            logger.error("reload refused, the previous config and model keep serving: \(error)")
        }
    }

    // MARK: reporting

    func statusLine(_ s: PipelineStats, fps: Double) -> String {
        String(format: "frames %d, %.2f fps, pass %d, reject %d, error %d, dropped %d, p50 %.0f ms, p99 %.0f ms",
               s.published, fps, s.passed, s.rejected, s.errors, s.dropped, s.p50Ms, s.p99Ms)
    }

    func summary(_ s: PipelineStats) -> String {
        "received \(s.received), published \(s.published), pass \(s.passed), reject \(s.rejected), error \(s.errors)"
            + (s.errorCodes.isEmpty ? "" : " (" + s.errorCodes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")")
            + ", dropped \(s.dropped), p50 \(String(format: "%.1f", s.p50Ms)) ms, p99 \(String(format: "%.1f", s.p99Ms)) ms"
    }

    /// Rejects at NOTICE, errors at WARNING (at most `errors_per_minute`), the rest at DEBUG.
    private func logResult(_ r: FrameResult) {
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
