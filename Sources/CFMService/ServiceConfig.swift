import CFMDetector
import CFMGeometry
import CFMModels
import CFMTensor
import Foundation
import Logging
import Yams

/// The daemon's configuration: one YAML file whose key names scripts rely on. Every
/// option has a default (an empty file is a valid config); unknown keys and out-of-range
/// values are refused with the file, the line and a one-line reason. `config/cfm.yaml`
/// documents every key.
public struct ServiceConfig: Codable, Sendable, Equatable {
    public struct Model: Codable, Sendable, Equatable {
        /// Pruning tier; nil = the bundle's. When set, a bundle of another tier is refused
        /// (bare mapper files without a manifest need it).
        public var tier: Tier? = nil
        /// Directory with vit.safetensors and pointmae.safetensors.
        public var extractors = "/usr/local/share/cfm/extractors"
        /// Model bundle directory (cfm train / cfm calibrate).
        public var bundle = "/usr/local/share/cfm/model"
        /// Point-MAE BatchNorm statistics (frame or running); nil = the bundle's (frame for bare mappers).
        public var batchnorm: BatchNormMode? = nil
        /// GEMM precision (fp32 or bf16); nil = the bundle's (fp32 for bare mappers). When set,
        /// a bundle calibrated at another precision is refused; bf16 needs AVX512-BF16.
        public var precision: Precision? = nil
        public init() {}
    }

    public enum Pattern: String, Codable, Sendable, CaseIterable { case sub, pull }
    /// The result socket: `pub` = best effort to any number of subscribers, every result a
    /// full subscriber refuses counted as undelivered; `push` = lossless to one consumer,
    /// the daemon waits for it (back-pressure up to the input's overflow policy).
    public enum OutputPattern: String, Codable, Sendable, CaseIterable { case pub, push }
    public enum Mode: String, Codable, Sendable, CaseIterable { case connect, bind }

    public struct Input: Codable, Sendable, Equatable {
        public var endpoint = "tcp://127.0.0.1:5555"
        public var pattern: Pattern = .sub
        public var mode: Mode = .connect
        /// SUB subscription prefix (ignored for pull).
        public var topic = "frame"
        /// Larger frames are refused with `too_large` before their pixels are read; together they
        /// size the input socket's ZMQ_MAXMSGSIZE (`FrameCodec.Limits.maxPartBytes`).
        public var maxWidth = 4096
        public var maxHeight = 4096
        /// Largest |X|, |Y| or |Z| accepted, in metres after unit conversion; farther finite
        /// coordinates get `out_of_range` (NaN and ±inf are holes, not errors).
        public var maxCoordinateM = 100.0
        /// ZMQ_RCVHWM: messages libzmq buffers before the daemon reads them.
        public var receiveHwm = 4
        public init() {}
    }

    public struct Output: Codable, Sendable, Equatable {
        public var endpoint = "tcp://127.0.0.1:5556"
        public var pattern: OutputPattern = .pub
        public var mode: Mode = .bind
        /// Topics are `<prefix>.pass|reject|error|dropped|heartbeat`.
        public var topicPrefix = "result"
        /// Adds the 224×224 float32 anomaly map as part 2.
        public var publishMaps = false
        /// ZMQ_SNDHWM of the result socket: results queued for one subscriber that does not
        /// read (its memory bound: ~200 KB each with maps, ~0.5 KB without).
        public var sendHwm = 100
        /// PUB: milliseconds a full subscriber may hold a result before it counts as undelivered.
        public var sendTimeoutMs = 100
        /// Seconds between heartbeats on `<prefix>.heartbeat` (0 = none).
        public var heartbeatIntervalS = 2.0
        /// ZMQ_LINGER (ms) when the daemon stops: time to flush the last results.
        public var lingerMs = 1000
        public init() {}
    }

    public struct Pipeline: Codable, Sendable, Equatable {
        /// Frames waiting for inference.
        public var queueDepth = 2
        public var overflow: OverflowPolicy = .dropOldest
        /// Inference workers; frames processed concurrently. The weights are loaded once and
        /// shared: each worker adds only its workspaces.
        public var inFlight = 1
        /// On SIGTERM: how long queued and in-flight frames may take to finish.
        public var drainTimeoutS = 10.0
        public init() {}
    }

    /// Preprocessing comes from the model bundle's manifest (what the mappers were trained
    /// with). A key set here only asserts a value: a bundle trained otherwise is refused with
    /// the key named. Bare mapper files (no manifest) take the keys set here over the defaults.
    public struct Preprocessing: Codable, Sendable, Equatable {
        public var backgroundRemoval: Bool? = nil
        public var borderWidth: Int? = nil
        public var ransacIterations: Int? = nil
        public var ransacSampleSize: Int? = nil
        public var inlierDistance: Double? = nil
        public var planeDistance: Double? = nil
        public var clusterDistance: Double? = nil
        public var clusterCleaning: ClusterCleaning? = nil
        public var clusterMinPoints: Int? = nil
        public var seed: Int? = nil
        public init() {}

        /// `options` with every key set here applied.
        public func applied(to options: PreprocessOptions) -> PreprocessOptions {
            var o = options
            if let v = backgroundRemoval { o.removeBackground = v }
            if let v = borderWidth { o.background.borderWidth = v }
            if let v = ransacIterations { o.background.iterations = v }
            if let v = ransacSampleSize { o.background.sampleSize = v }
            if let v = inlierDistance { o.background.inlierDistance = v }
            if let v = planeDistance { o.background.planeDistance = v }
            if let v = clusterDistance { o.background.clusterDistance = v }
            if let v = clusterCleaning { o.background.clusterCleaning = v }
            if let v = clusterMinPoints { o.background.clusterMinPoints = v }
            if let v = seed { o.background.seed = UInt64(v) }
            return o
        }

        /// The first key set here whose value differs from `trained`, as a one-line reason; nil when all agree.
        public func disagreement(with trained: PreprocessOptions) -> String? {
            let b = trained.background
            let keys: [(String, String?, String)] = [
                ("background_removal", backgroundRemoval.map { "\($0)" }, "\(trained.removeBackground)"),
                ("border_width", borderWidth.map { "\($0)" }, "\(b.borderWidth)"),
                ("ransac_iterations", ransacIterations.map { "\($0)" }, "\(b.iterations)"),
                ("ransac_sample_size", ransacSampleSize.map { "\($0)" }, "\(b.sampleSize)"),
                ("inlier_distance", inlierDistance.map { "\($0)" }, "\(b.inlierDistance)"),
                ("plane_distance", planeDistance.map { "\($0)" }, "\(b.planeDistance)"),
                ("cluster_distance", clusterDistance.map { "\($0)" }, "\(b.clusterDistance)"),
                ("cluster_cleaning", clusterCleaning.map(\.rawValue), b.clusterCleaning.rawValue),
                ("cluster_min_points", clusterMinPoints.map { "\($0)" }, "\(b.clusterMinPoints)"),
                ("seed", seed.map { "\($0)" }, "\(b.seed)"),
            ]
            guard let (key, set, value) = keys.first(where: { $0.1 != nil && $0.1 != $0.2 }) else { return nil }
            return "preprocessing.\(key) is \(set!), but the bundle was trained with \(value) "
                + "(preprocessing comes from the bundle: remove the key)"
        }
    }

    public struct Decision: Codable, Sendable, Equatable {
        /// Explicit threshold; null = the bundle manifest's calibrated one.
        public var threshold: Double? = nil
        public init() {}
    }

    public enum Journald: String, Codable, Sendable, CaseIterable { case auto, on, off }

    public struct Logging: Codable, Sendable, Equatable {
        public var level = "info"
        public var journald: Journald = .auto
        /// Periodic summary at INFO every this many seconds (0 = never).
        public var summaryIntervalS = 60.0
        /// At most this many frame-error WARNINGs per minute; the rest are counted.
        public var errorsPerMinute = 20
        /// Log each reject at NOTICE.
        public var logRejects = true
        /// Log each pass at INFO (one line per frame: for commissioning and audits).
        public var logPasses = false
        public init() {}
    }

    public struct Watchdog: Codable, Sendable, Equatable {
        /// Feed the systemd watchdog (when the unit sets WatchdogSec).
        public var enabled = true
        /// A frame in inference for longer than this counts as a stall: the watchdog starves.
        public var stallTimeoutS = 30.0
        /// STATUS= refresh period.
        public var statusIntervalS = 5.0
        public init() {}
    }

    /// The Prometheus scrape endpoint (README "Monitoring").
    public struct Metrics: Codable, Sendable, Equatable {
        /// `host:port` serving `GET /metrics` over HTTP; nil = no endpoint.
        public var listen: String? = nil
        public init() {}
    }

    /// Transport security of the input and output sockets (docs/security.md).
    public struct Security: Codable, Sendable, Equatable {
        /// ZeroMQ CURVE (encryption + client keys) on input and output; false = plain ZeroMQ.
        public var curve = false
        /// The server's secret key file (`cfm keygen` → NAME.key_secret, mode 0600).
        public var secretKey = ""
        /// Directory of the client public key files (*.key) that may connect.
        public var authorizedKeys = ""
        public init() {}
    }

    /// Recording frames from the line into the MVTec 3D-AD layout (`FrameRecorder`).
    public struct Recording: Codable, Sendable, Equatable {
        /// Which scored frames to record.
        public enum Which: String, Codable, Sendable, CaseIterable {
            case all, pass, reject
            public func includes(_ verdict: Verdict) -> Bool {
                switch self {
                case .all: verdict == .pass || verdict == .reject
                case .pass: verdict == .pass
                case .reject: verdict == .reject
                }
            }
        }
        /// Dataset root to record into; null = recording off.
        public var directory: String? = nil
        /// Class folder under `directory` (`cfm train --data <directory>/<class_name>`).
        public var className = "recorded"
        public var which: Which = .pass
        /// Stop recording once the class folder holds this many frames (null = no cap).
        public var maxFrames: Int? = 1000
        /// Stop recording once the class folder holds this many bytes (null = no cap).
        public var maxBytes: Int? = 10_000_000_000
        public init() {}
    }

    public var model = Model()
    public var input = Input()
    public var output = Output()
    public var pipeline = Pipeline()
    public var preprocessing = Preprocessing()
    public var decision = Decision()
    public var logging = Logging()
    public var watchdog = Watchdog()
    public var security = Security()
    public var metrics = Metrics()
    public var recording = Recording()

    public init() {}

    public var logLevel: Logger.Level { Logger.Level(rawValue: logging.level) ?? .info }
}

/// What the bounded queue does with a frame that finds it full.
public enum OverflowPolicy: String, Codable, Sendable, CaseIterable {
    /// Shed the oldest queued frame (`result.dropped`) and queue the new one: freshest results.
    case dropOldest = "drop_oldest"
    /// Shed the new frame.
    case dropNewest = "drop_newest"
    /// Stop reading input until there is room (back-pressure: PUSH senders block, SUB drops at its HWM).
    case block
}

/// A config that cannot be used: where and why, in one line.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var line: Int?
    public var reason: String

    public init(file: String, line: Int?, reason: String) { (self.file, self.line, self.reason) = (file, line, reason) }

    public var description: String { line.map { "\(file):\($0): \(reason)" } ?? "\(file): \(reason)" }
}

extension ServiceConfig {
    /// Key names per section, as written in YAML.
    static let schema: [String: [String]] = [
        "model": ["tier", "extractors", "bundle", "batchnorm", "precision"],
        "input": ["endpoint", "pattern", "mode", "topic", "max_width", "max_height", "max_coordinate_m", "receive_hwm"],
        "output": ["endpoint", "pattern", "mode", "topic_prefix", "publish_maps", "send_hwm", "send_timeout_ms", "heartbeat_interval_s",
                   "linger_ms"],
        "pipeline": ["queue_depth", "overflow", "in_flight", "drain_timeout_s"],
        "preprocessing": ["background_removal", "border_width", "ransac_iterations", "ransac_sample_size",
                          "inlier_distance", "plane_distance", "cluster_distance", "cluster_cleaning", "cluster_min_points", "seed"],
        "decision": ["threshold"],
        "logging": ["level", "journald", "summary_interval_s", "errors_per_minute", "log_rejects", "log_passes"],
        "watchdog": ["enabled", "stall_timeout_s", "status_interval_s"],
        "security": ["curve", "secret_key", "authorized_keys"],
        "metrics": ["listen"],
        "recording": ["directory", "class_name", "which", "max_frames", "max_bytes"],
    ]

    /// Reads and validates `url`.
    public static func load(_ url: URL) throws -> ServiceConfig {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw ConfigError(file: url.path, line: nil, reason: "cannot read: \(error.localizedDescription)")
        }
        try FilePermissions.requireTrusted(url, role: .config)
        return try parse(text, file: url.path)
    }

    /// Parses and validates YAML `text` (`file` names it in errors).
    public static func parse(_ text: String, file: String = "<config>") throws -> ServiceConfig {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch let error as YamlError {
            throw ConfigError(file: file, line: yamlLine(error), reason: yamlReason(error))
        }
        guard let root else { return ServiceConfig() }
        guard case let .mapping(top) = root else {
            throw ConfigError(file: file, line: root.mark?.line, reason: "the config must be a mapping of sections")
        }
        for (key, value) in top {
            let name = key.string ?? "?"
            guard let keys = schema[name] else {
                throw ConfigError(file: file, line: key.mark?.line,
                                  reason: "unknown section '\(name)' (known: \(schema.keys.sorted().joined(separator: ", ")))")
            }
            if case .scalar = value, value.null != nil { continue }
            guard case let .mapping(section) = value else {
                throw ConfigError(file: file, line: value.mark?.line, reason: "'\(name)' must be a mapping")
            }
            for (k, _) in section where !keys.contains(k.string ?? "") {
                throw ConfigError(file: file, line: k.mark?.line,
                                  reason: "unknown key '\(name).\(k.string ?? "?")' (known: \(keys.joined(separator: ", ")))")
            }
        }
        let decoder = YAMLDecoder()
        do {
            return try decoder.decode(ServiceConfig.self, from: root)
        } catch {
            let (path, reason) = describe(error)
            throw ConfigError(file: file, line: line(of: path, in: root), reason: reason)
        }
    }

    private static func yamlLine(_ error: YamlError) -> Int? {
        switch error {
        case let .scanner(_, _, mark, _), let .parser(_, _, mark, _), let .composer(_, _, mark, _): mark.line
        case let .duplicatedKeysInMapping(_, context): context.mark.line
        default: nil
        }
    }

    private static func yamlReason(_ error: YamlError) -> String {
        switch error {
        case let .scanner(_, problem, _, _), let .parser(_, problem, _, _), let .composer(_, problem, _, _):
            "invalid YAML: \(problem)"
        case let .duplicatedKeysInMapping(duplicates, _): "duplicate key \(duplicates.sorted().map { "'\($0)'" }.joined(separator: ", "))"
        default: "invalid YAML: \(String(describing: error).split(separator: "\n").first ?? "")"
        }
    }

    /// The coding path and a one-line reason of a decoding error (Yams may wrap errors
    /// thrown by `init(from:)`: the underlying one is reported).
    static func describe(_ error: Error) -> ([String], String) {
        func keys(_ path: [CodingKey]) -> [String] { path.map { $0.intValue.map(String.init) ?? $0.stringValue } }
        switch error {
        case let e as DecodingError:
            switch e {
            case let .dataCorrupted(c):
                if let underlying = c.underlyingError, !(underlying is DecodingError) {
                    return (keys(c.codingPath), "\(keys(c.codingPath).joined(separator: ".")): \(underlying)")
                }
                return (keys(c.codingPath), "\(keys(c.codingPath).joined(separator: ".")): \(c.debugDescription)")
            case let .typeMismatch(type, c):
                return (keys(c.codingPath), "\(keys(c.codingPath).joined(separator: ".")): expected \(typeName(type))")
            case let .valueNotFound(type, c):
                return (keys(c.codingPath), "\(keys(c.codingPath).joined(separator: ".")): expected \(typeName(type)), found null")
            case let .keyNotFound(key, c):
                return (keys(c.codingPath), "missing key '\(key.stringValue)'")
            @unknown default:
                return ([], "\(e)")
            }
        default:
            return ([], "\(error)")
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: "an integer"
        case is Double.Type, is Float.Type: "a number"
        case is Bool.Type: "true or false"
        case is String.Type: "a string"
        default: "\(type)"
        }
    }

    /// Line of the node at `path` (the deepest one that exists).
    static func line(of path: [String], in root: Node) -> Int? {
        var node = root, line = root.mark?.line
        for key in path {
            guard case let .mapping(m) = node, let pair = m.first(where: { $0.key.string == key }) else { break }
            node = pair.value
            line = pair.value.mark?.line ?? pair.key.mark?.line
        }
        return line
    }
}

// MARK: - Decoding with defaults and ranges

private struct RangeError: Error, CustomStringConvertible {
    var description: String
}

private extension KeyedDecodingContainer {
    func value<T: Decodable>(_ key: Key, _ fallback: T) throws -> T {
        try decodeIfPresent(T.self, forKey: key) ?? fallback
    }

    func int(_ key: Key, _ fallback: Int, _ range: ClosedRange<Int>) throws -> Int {
        try int(key, range) ?? fallback
    }

    /// An optional integer in `range`: nil when the key is absent or null.
    func int(_ key: Key, _ range: ClosedRange<Int>) throws -> Int? {
        guard let v = try decodeIfPresent(Int.self, forKey: key) else { return nil }
        guard range.contains(v) else {
            throw DecodingError.dataCorruptedError(forKey: key, in: self,
                                                   debugDescription: "\(v) is out of range \(range.lowerBound)…\(range.upperBound)")
        }
        return v
    }

    func double(_ key: Key, _ fallback: Double, _ range: ClosedRange<Double>) throws -> Double {
        try double(key, range) ?? fallback
    }

    /// An optional finite number in `range`: nil when the key is absent or null.
    func double(_ key: Key, _ range: ClosedRange<Double>) throws -> Double? {
        guard let v = try decodeIfPresent(Double.self, forKey: key) else { return nil }
        guard v.isFinite, range.contains(v) else {
            throw DecodingError.dataCorruptedError(forKey: key, in: self,
                                                   debugDescription: "\(v) is out of range \(range.lowerBound)…\(range.upperBound)")
        }
        return v
    }

    func choice<T: RawRepresentable & CaseIterable & Decodable>(_ key: Key, _ fallback: T) throws -> T where T.RawValue == String {
        try choice(key) ?? fallback
    }

    /// An optional choice: nil when the key is absent or null.
    func choice<T: RawRepresentable & CaseIterable & Decodable>(_ key: Key) throws -> T? where T.RawValue == String {
        guard let raw = try decodeIfPresent(String.self, forKey: key) else { return nil }
        guard let v = T(rawValue: raw) else {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: self,
                debugDescription: "'\(raw)' is not one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return v
    }

    func text(_ key: Key, _ fallback: String, nonEmpty: Bool = true) throws -> String {
        let v = try value(key, fallback)
        if nonEmpty && v.isEmpty { throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: "must not be empty") }
        return v
    }

    func endpoint(_ key: Key, _ fallback: String) throws -> String {
        let v = try value(key, fallback)
        let schemes = ["tcp://", "ipc://", "inproc://", "pgm://", "epgm://", "vmci://"]
        guard schemes.contains(where: v.hasPrefix), v.count > 6 else {
            throw DecodingError.dataCorruptedError(forKey: key, in: self,
                                                   debugDescription: "'\(v)' is not a ZeroMQ endpoint (tcp://host:port, ipc://path, …)")
        }
        return v
    }
}

extension ServiceConfig {
    enum CodingKeys: String, CodingKey { case model, input, output, pipeline, preprocessing, decision, logging, watchdog, security, metrics, recording }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.value(.model, Model())
        input = try c.value(.input, Input())
        output = try c.value(.output, Output())
        pipeline = try c.value(.pipeline, Pipeline())
        preprocessing = try c.value(.preprocessing, Preprocessing())
        decision = try c.value(.decision, Decision())
        logging = try c.value(.logging, Logging())
        watchdog = try c.value(.watchdog, Watchdog())
        security = try c.value(.security, Security())
        metrics = try c.value(.metrics, Metrics())
        recording = try c.value(.recording, Recording())
    }
}


extension ServiceConfig.Model {
    enum CodingKeys: String, CodingKey { case tier, extractors, bundle, batchnorm, precision }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self), d = Self()
        tier = try c.choice(.tier)
        extractors = try c.text(.extractors, d.extractors)
        bundle = try c.text(.bundle, d.bundle)
        batchnorm = try c.choice(.batchnorm)
        precision = try c.choice(.precision)
    }
}

extension ServiceConfig.Input {
    enum CodingKeys: String, CodingKey {
        case endpoint, pattern, mode, topic, maxWidth = "max_width", maxHeight = "max_height", maxCoordinateM = "max_coordinate_m",
             receiveHwm = "receive_hwm"
    }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self), d = Self()
        endpoint = try c.endpoint(.endpoint, d.endpoint)
        pattern = try c.choice(.pattern, d.pattern)
        mode = try c.choice(.mode, d.mode)
        topic = try c.text(.topic, d.topic, nonEmpty: false)
        maxWidth = try c.int(.maxWidth, d.maxWidth, 16...16384)
        maxHeight = try c.int(.maxHeight, d.maxHeight, 16...16384)
        maxCoordinateM = try c.double(.maxCoordinateM, d.maxCoordinateM, 0.001...1_000_000)
        receiveHwm = try c.int(.receiveHwm, d.receiveHwm, 1...100_000)
    }
}

extension ServiceConfig.Output {
    enum CodingKeys: String, CodingKey {
        case endpoint, pattern, mode, topicPrefix = "topic_prefix", publishMaps = "publish_maps", sendHwm = "send_hwm",
             sendTimeoutMs = "send_timeout_ms", heartbeatIntervalS = "heartbeat_interval_s", lingerMs = "linger_ms"
    }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self), d = Self()
        endpoint = try c.endpoint(.endpoint, d.endpoint)
        pattern = try c.choice(.pattern, d.pattern)
        mode = try c.choice(.mode, d.mode)
        topicPrefix = try c.text(.topicPrefix, d.topicPrefix)
        publishMaps = try c.value(.publishMaps, d.publishMaps)
        sendHwm = try c.int(.sendHwm, d.sendHwm, 1...1_000_000)
        sendTimeoutMs = try c.int(.sendTimeoutMs, d.sendTimeoutMs, 0...10_000)
        heartbeatIntervalS = try c.double(.heartbeatIntervalS, d.heartbeatIntervalS, 0...3600)
        if heartbeatIntervalS > 0 && heartbeatIntervalS < 0.1 {
            throw DecodingError.dataCorruptedError(forKey: .heartbeatIntervalS, in: c,
                                                   debugDescription: "\(heartbeatIntervalS) is below 0.1 (0 = no heartbeat)")
        }
        lingerMs = try c.int(.lingerMs, d.lingerMs, 0...60_000)
    }
}

extension ServiceConfig.Pipeline {
    enum CodingKeys: String, CodingKey {
        case queueDepth = "queue_depth", overflow, inFlight = "in_flight", drainTimeoutS = "drain_timeout_s"
    }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self), d = Self()
        queueDepth = try c.int(.queueDepth, d.queueDepth, 1...1024)
        overflow = try c.choice(.overflow, d.overflow)
        inFlight = try c.int(.inFlight, d.inFlight, 1...8)
        drainTimeoutS = try c.double(.drainTimeoutS, d.drainTimeoutS, 0...600)
    }
}

extension ServiceConfig.Preprocessing {
    enum CodingKeys: String, CodingKey {
        case backgroundRemoval = "background_removal", borderWidth = "border_width", ransacIterations = "ransac_iterations",
             ransacSampleSize = "ransac_sample_size", inlierDistance = "inlier_distance", planeDistance = "plane_distance",
             clusterDistance = "cluster_distance", clusterCleaning = "cluster_cleaning", clusterMinPoints = "cluster_min_points", seed
    }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        backgroundRemoval = try c.decodeIfPresent(Bool.self, forKey: .backgroundRemoval)
        borderWidth = try c.int(.borderWidth, 1...1000)
        ransacIterations = try c.int(.ransacIterations, 1...1_000_000)
        ransacSampleSize = try c.int(.ransacSampleSize, 3...10_000)
        inlierDistance = try c.double(.inlierDistance, 1e-6...1)
        planeDistance = try c.double(.planeDistance, 0...1)
        clusterDistance = try c.double(.clusterDistance, 1e-6...1)
        clusterCleaning = try c.choice(.clusterCleaning)
        clusterMinPoints = try c.int(.clusterMinPoints, 1...1_000_000)
        seed = try c.int(.seed, 0...Int.max)
    }
}

extension ServiceConfig.Decision {
    enum CodingKeys: String, CodingKey { case threshold }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        threshold = try c.decodeIfPresent(Double.self, forKey: .threshold)
        if let t = threshold, !(t.isFinite && t >= 0) {
            throw DecodingError.dataCorruptedError(forKey: .threshold, in: c, debugDescription: "\(t) is not a finite non-negative score")
        }
    }
}

extension ServiceConfig.Logging {
    enum CodingKeys: String, CodingKey {
        case level, journald, summaryIntervalS = "summary_interval_s", errorsPerMinute = "errors_per_minute", logRejects = "log_rejects",
             logPasses = "log_passes"
    }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self), d = Self()
        level = try c.value(.level, d.level)
        let levels = Logger.Level.allCases.map(\.rawValue)
        guard levels.contains(level) else {
            throw DecodingError.dataCorruptedError(forKey: .level, in: c,
                                                   debugDescription: "'\(level)' is not one of \(levels.joined(separator: ", "))")
        }
        journald = try c.choice(.journald, d.journald)
        summaryIntervalS = try c.double(.summaryIntervalS, d.summaryIntervalS, 0...86_400)
        errorsPerMinute = try c.int(.errorsPerMinute, d.errorsPerMinute, 0...1_000_000)
        logRejects = try c.value(.logRejects, d.logRejects)
        logPasses = try c.value(.logPasses, d.logPasses)
    }
}

extension ServiceConfig.Watchdog {
    enum CodingKeys: String, CodingKey { case enabled, stallTimeoutS = "stall_timeout_s", statusIntervalS = "status_interval_s" }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self), d = Self()
        enabled = try c.value(.enabled, d.enabled)
        stallTimeoutS = try c.double(.stallTimeoutS, d.stallTimeoutS, 0.1...3600)
        statusIntervalS = try c.double(.statusIntervalS, d.statusIntervalS, 0.1...3600)
    }
}

extension ServiceConfig.Security {
    enum CodingKeys: String, CodingKey { case curve, secretKey = "secret_key", authorizedKeys = "authorized_keys" }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self), d = Self()
        curve = try c.value(.curve, d.curve)
        secretKey = try c.text(.secretKey, d.secretKey, nonEmpty: false)
        authorizedKeys = try c.text(.authorizedKeys, d.authorizedKeys, nonEmpty: false)
        for (key, value) in [(CodingKeys.secretKey, secretKey), (.authorizedKeys, authorizedKeys)] where curve && value.isEmpty {
            throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "must be set when security.curve is true")
        }
    }
}

extension ServiceConfig.Metrics {
    enum CodingKeys: String, CodingKey { case listen }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        listen = try c.decodeIfPresent(String.self, forKey: .listen)
        if let listen {
            do { _ = try ListenAddress(listen) } catch {
                throw DecodingError.dataCorruptedError(forKey: .listen, in: c, debugDescription: "\(error)")
            }
        }
    }
}

extension ServiceConfig.Recording {
    enum CodingKeys: String, CodingKey { case directory, className = "class_name", which, maxFrames = "max_frames", maxBytes = "max_bytes" }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self), d = Self()
        directory = try c.decodeIfPresent(String.self, forKey: .directory)
        if directory?.isEmpty == true {
            throw DecodingError.dataCorruptedError(forKey: .directory, in: c, debugDescription: "must not be empty (null = recording off)")
        }
        className = try c.text(.className, d.className)
        if className.contains("/") || className.hasPrefix(".") {
            throw DecodingError.dataCorruptedError(forKey: .className, in: c, debugDescription: "'\(className)' is not a folder name")
        }
        which = try c.choice(.which, d.which)
        // An explicit null lifts a cap; an absent key keeps the default.
        maxFrames = c.contains(.maxFrames) ? try c.decodeIfPresent(Int.self, forKey: .maxFrames) : d.maxFrames
        maxBytes = c.contains(.maxBytes) ? try c.decodeIfPresent(Int.self, forKey: .maxBytes) : d.maxBytes
        for (key, value) in [(CodingKeys.maxFrames, maxFrames), (.maxBytes, maxBytes)] {
            if let v = value, v < 1 { throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "\(v) is below 1 (null = no cap)") }
        }
    }
}
