import CoreMetrics
import Foundation
import class Prometheus.PrometheusCollectorRegistry
import struct Prometheus.PrometheusMetricsFactory

/// The daemon's Prometheus metrics (all named `cfm_…`; README "Monitoring" lists them).
///
/// Two feeds: `observe` sees every result on the publisher thread (verdicts, error codes,
/// undelivered results, latencies per stage, pass scores, the threshold), and `exposition`
/// adds what only a snapshot knows at scrape time (queue depth, frames in inference,
/// received frames, reloads, refused CURVE peers, the model in force). The instruments are
/// swift-metrics types bound to this instance's own Prometheus registry (not the process-wide
/// `MetricsSystem`), so several services in one process never share counters.
public final class ServiceMetrics: @unchecked Sendable {
    /// What the scrape-time feed reads from the running service.
    public struct Snapshot: Sendable {
        public var stats: PipelineStats
        public var reloads: (applied: Int, refused: Int)
        /// CURVE handshakes refused so far; nil when CURVE is off.
        public var refusedPeers: Int?
        public var config: ServiceConfig

        public init(stats: PipelineStats, reloads: (applied: Int, refused: Int), refusedPeers: Int?, config: ServiceConfig) {
            (self.stats, self.reloads, self.refusedPeers, self.config) = (stats, reloads, refusedPeers, config)
        }
    }

    /// Pass scores kept for the recent-score quantiles.
    public static let recentPassWindow = 1024
    /// Quantiles of the recent pass scores (`cfm_pass_score_recent{quantile=…}`).
    public static let passQuantiles = [0.5, 0.9, 0.99]
    /// Latency buckets, seconds: 1 ms … 10 s (a CPU inference takes tens to hundreds of ms).
    static let latencyBuckets: [Duration] = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000]
        .map { Duration.microseconds(Int64($0 * 1000)) }
    /// Pass score ÷ threshold buckets: a pass is ≤ 1 by definition; drift shows as mass moving up.
    static let passRatioBuckets = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0]

    public let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory

    // Publisher thread only (`observe`).
    private let framesByVerdict: [Verdict: Counter]
    private let errorsByCode: [ErrorCode: Counter]
    private let undelivered: Counter
    private let frameLatency: CoreMetrics.Timer
    private var stageLatency: [String: CoreMetrics.Timer] = [:]
    private let passScoreRatio: Recorder

    // Scrape side.
    private let received: Counter
    private let reloadsApplied: Counter, reloadsRefused: Counter
    /// Created at the first scrape that knows CURVE is on: absent from the exposition without CURVE.
    private var refusedPeers: Counter?
    private let queueDepth: Gauge, queueCapacity: Gauge, preparing: Gauge, inFlight: Gauge, threshold: Gauge
    /// Created at the first scrape after a pass: no series (rather than a made-up 0) before.
    private var passQuantileGauges: [Gauge] = []
    private var modelInfo: (labels: [String], gauge: Gauge)?

    /// Shared between the two feeds.
    private let lock = NSLock()
    private var recentPasses = [Double](repeating: 0, count: recentPassWindow)
    private var passCount = 0
    private var lastModel: (tier: String, model: String)?
    /// Snapshot counters already added to their Prometheus counters (counters only go up by deltas).
    private var counted = (received: 0, applied: 0, refused: 0, peers: 0)

    /// `startedWall`: when the service started, seconds since 1970 (`cfm_start_time_seconds`).
    public init(startedWall: Double = Date().timeIntervalSince1970) {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = Self.latencyBuckets
        factory.valueHistogramBuckets = ["cfm_pass_score_ratio": Self.passRatioBuckets]
        self.factory = factory
        framesByVerdict = Dictionary(uniqueKeysWithValues: Verdict.allCases.map {
            ($0, Counter(label: "cfm_frames_total", dimensions: [("verdict", $0.rawValue)], factory: factory))
        })
        errorsByCode = Dictionary(uniqueKeysWithValues: ErrorCode.allCases.map {
            ($0, Counter(label: "cfm_frame_errors_total", dimensions: [("code", $0.rawValue)], factory: factory))
        })
        undelivered = Counter(label: "cfm_results_undelivered_total", factory: factory)
        frameLatency = CoreMetrics.Timer(label: "cfm_frame_latency_seconds", factory: factory)
        passScoreRatio = Recorder(label: "cfm_pass_score_ratio", aggregate: true, factory: factory)
        received = Counter(label: "cfm_frames_received_total", factory: factory)
        reloadsApplied = Counter(label: "cfm_reloads_total", dimensions: [("outcome", "applied")], factory: factory)
        reloadsRefused = Counter(label: "cfm_reloads_total", dimensions: [("outcome", "refused")], factory: factory)
        queueDepth = Gauge(label: "cfm_queue_depth", factory: factory)
        queueCapacity = Gauge(label: "cfm_queue_capacity", factory: factory)
        preparing = Gauge(label: "cfm_frames_preparing", factory: factory)
        inFlight = Gauge(label: "cfm_frames_in_flight", factory: factory)
        threshold = Gauge(label: "cfm_threshold", factory: factory)
        Gauge(label: "cfm_start_time_seconds", factory: factory).record(startedWall)
    }

    /// One published result (publisher thread): `delivered` = the output took it.
    public func observe(_ r: FrameResult, delivered: Bool) {
        framesByVerdict[r.verdict]?.increment()
        if r.verdict == .error { errorsByCode[r.error?.code ?? .internal]?.increment() }
        if !delivered { undelivered.increment() }
        guard r.verdict == .pass || r.verdict == .reject else { return }
        frameLatency.recordNanoseconds(Int64(r.latencyMs * 1e6))
        for stage in r.stagesMs {
            let timer = stageLatency[stage.name] ?? {
                let t = CoreMetrics.Timer(label: "cfm_stage_duration_seconds", dimensions: [("stage", stage.name)], factory: factory)
                stageLatency[stage.name] = t
                return t
            }()
            timer.recordNanoseconds(Int64(stage.ms * 1e6))
        }
        if let t = r.threshold, t.isFinite { threshold.record(Self.decimal(t)) }
        lock.lock()
        if let tier = r.tier, let model = r.model { lastModel = (tier, model) }
        if r.verdict == .pass, let score = r.score, score.isFinite {
            recentPasses[passCount % recentPasses.count] = Self.decimal(score)
            passCount += 1
            if let t = r.threshold, t > 0 { passScoreRatio.record(Double(score / t)) }
        }
        lock.unlock()
    }

    /// A score as results and logs print it (1.3691728, not the binary expansion 1.3691728115081787).
    static func decimal(_ score: Float) -> Double { Double("\(score)") ?? Double(score) }

    /// The text exposition (format 0.0.4) after bringing the scrape-time metrics up to `now`.
    public func exposition(_ now: Snapshot) -> [UInt8] {
        lock.lock()
        received.increment(by: Int64(max(0, now.stats.received - counted.received)))
        reloadsApplied.increment(by: Int64(max(0, now.reloads.applied - counted.applied)))
        reloadsRefused.increment(by: Int64(max(0, now.reloads.refused - counted.refused)))
        if let peers = now.refusedPeers {
            let counter = refusedPeers ?? Counter(label: "cfm_curve_refused_peers_total", factory: factory)
            refusedPeers = counter
            counter.increment(by: Int64(max(0, peers - counted.peers)))
        }
        counted = (now.stats.received, now.reloads.applied, now.reloads.refused, now.refusedPeers ?? counted.peers)
        queueDepth.record(now.stats.queued)
        queueCapacity.record(now.config.pipeline.queueDepth)
        preparing.record(now.stats.preparing)
        inFlight.record(now.stats.inFlight)
        let window = recentPasses.prefix(min(passCount, recentPasses.count)).sorted()
        if !window.isEmpty && passQuantileGauges.isEmpty {
            passQuantileGauges = Self.passQuantiles.map {
                Gauge(label: "cfm_pass_score_recent", dimensions: [("quantile", "\($0)")], factory: factory)
            }
        }
        for (gauge, q) in zip(passQuantileGauges, Self.passQuantiles) {
            gauge.record(window[min(window.count - 1, Int((q * Double(window.count - 1)).rounded()))])
        }
        // The model in force: a reload changes its labels, so the old series goes away.
        let labels = [lastModel?.tier ?? now.config.model.tier?.rawValue ?? "", lastModel?.model ?? "", now.config.model.bundle]
        if modelInfo?.labels != labels {
            modelInfo?.gauge.destroy()
            let gauge = Gauge(label: "cfm_model_info", dimensions: zip(["tier", "model", "bundle"], labels).map { ($0, $1) }, factory: factory)
            gauge.record(1)
            modelInfo = (labels, gauge)
        }
        lock.unlock()
        return registry.emitToBuffer()
    }
}
