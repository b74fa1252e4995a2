import CFMModels
import CFMTensor
import Crypto
import Foundation
import Yams

/// `manifest.yaml` of a model bundle: what was trained, on what, and how to decide. It is
/// the contract between training and every command that scores with the bundle: the tier,
/// the BatchNorm mode, the preprocessing and the scoring definition come from here.
public struct ModelManifest: Codable, Sendable, Equatable {
    /// Files and their checksums (`Checksum.sha256`; bundles of earlier versions: `fnv1a64:`).
    public struct FileSum: Codable, Sendable, Equatable {
        public var file: String
        public var checksum: String

        public init(file: String, checksum: String) { (self.file, self.checksum) = (file, checksum) }
    }

    /// How the mappers were trained.
    public struct Training: Codable, Sendable, Equatable {
        public var samples: Int, shots: Int?, epochs: Int, batchSize: Int, learningRate: Float
        public var pixelsPerSample: Int, seed: UInt64
        public var finalLoss: Float, finalCosine3D: Float, finalCosine2D: Float
        /// Wall time of the whole run.
        public var seconds: Double
        /// Of which: preparing the features (`extractedSamples` extracted, the rest read from the
        /// cache) and the epochs themselves. Absent in bundles of earlier versions.
        public var extractionSeconds: Double?, extractedSamples: Int?, trainingSeconds: Double?
        /// Which nominal training parts were used and which were held out for calibration.
        /// Absent in bundles of earlier versions and in imported ones.
        public var selection: SampleSelection?

        public init(samples: Int, shots: Int?, epochs: Int, batchSize: Int, learningRate: Float, pixelsPerSample: Int,
                    seed: UInt64, finalLoss: Float, finalCosine3D: Float, finalCosine2D: Float, seconds: Double,
                    extractionSeconds: Double? = nil, extractedSamples: Int? = nil, trainingSeconds: Double? = nil,
                    selection: SampleSelection? = nil) {
            (self.samples, self.shots, self.epochs, self.batchSize, self.learningRate) = (samples, shots, epochs, batchSize, learningRate)
            (self.pixelsPerSample, self.seed, self.finalLoss) = (pixelsPerSample, seed, finalLoss)
            (self.finalCosine3D, self.finalCosine2D, self.seconds) = (finalCosine3D, finalCosine2D, seconds)
            (self.extractionSeconds, self.extractedSamples, self.trainingSeconds) = (extractionSeconds, extractedSamples, trainingSeconds)
            self.selection = selection
        }

        enum CodingKeys: String, CodingKey {
            case samples, shots, epochs, seed, seconds, selection
            case extractionSeconds = "extraction_seconds", extractedSamples = "extracted_samples", trainingSeconds = "training_seconds"
            case batchSize = "batch_size", learningRate = "learning_rate", pixelsPerSample = "pixels_per_sample"
            case finalLoss = "final_loss", finalCosine3D = "final_cosine_3d", finalCosine2D = "final_cosine_2d"
        }
    }

    /// The pass/reject threshold and the nominal score distribution it came from.
    public struct Calibration: Codable, Sendable, Equatable {
        public var threshold: Float, falseRejectRate: Double, samples: Int
        public var min: Float, median: Float, p99: Float, max: Float
        /// Which nominal parts were scored (absent in bundles calibrated before it was recorded:
        /// those used `validation`).
        public var split: CalibrationSplit?

        public init(threshold: Float, falseRejectRate: Double, samples: Int, min: Float, median: Float, p99: Float, max: Float,
                    split: CalibrationSplit? = nil) {
            (self.threshold, self.falseRejectRate, self.samples) = (threshold, falseRejectRate, samples)
            (self.min, self.median, self.p99, self.max, self.split) = (min, median, p99, max, split)
        }

        enum CodingKeys: String, CodingKey {
            case threshold, samples, min, median, p99, max, split
            case falseRejectRate = "false_reject_rate"
        }
    }

    public var format = "cfm-model-bundle/2"
    public var tier: Tier
    public var className: String
    public var rgbDim: Int, xyzDim: Int, hiddenDim: Int
    public var batchnorm: BatchNormMode
    /// The preprocessing the mappers were trained with. Absent in bundles written before it was
    /// recorded (`cfm-model-bundle/1`): those were trained with `PreprocessOptions.beforeDensityClusters`.
    public var preprocessing: PreprocessOptions?
    /// How ψ2D and ψ3D become the map and the score. Absent in `cfm-model-bundle/1`: the one
    /// definition there was then (`scoringDefinition`).
    public var scoring: ScoringDefinition?
    public var extractors: [FileSum]
    public var mappers: [FileSum]
    public var training: Training
    public var calibration: Calibration?
    /// The precision of the GEMM-heavy layers the bundle was calibrated at (`cfm calibrate
    /// --precision`), and so what it scores with by default. Absent (bundles calibrated before
    /// it was recorded, or not calibrated) = fp32.
    public var precision: Precision?
    public var createdAt: String
    public var toolVersion: String
    /// Where the weights came from, for bundles made by `cfm import` (absent in trained ones).
    public var provenance: Provenance?

    enum CodingKeys: String, CodingKey {
        case format, tier, extractors, mappers, training, calibration, precision, batchnorm, preprocessing, scoring, provenance
        case className = "class", rgbDim = "rgb_dim", xyzDim = "xyz_dim", hiddenDim = "hidden_dim"
        case createdAt = "created_at", toolVersion = "tool_version"
    }

    public init(tier: Tier, className: String, rgbDim: Int, xyzDim: Int, hiddenDim: Int, batchnorm: BatchNormMode,
                preprocessing: PreprocessOptions, scoring: ScoringDefinition = ScoringDefinition(),
                extractors: [FileSum], mappers: [FileSum], training: Training, createdAt: String, toolVersion: String) {
        (self.tier, self.className, self.rgbDim, self.xyzDim, self.hiddenDim) = (tier, className, rgbDim, xyzDim, hiddenDim)
        (self.batchnorm, self.preprocessing, self.scoring) = (batchnorm, preprocessing, scoring)
        (self.extractors, self.mappers, self.training) = (extractors, mappers, training)
        (self.createdAt, self.toolVersion) = (createdAt, toolVersion)
    }

    /// The preprocessing to score with: the recorded one, or the defaults an earlier bundle was trained with.
    public var preprocessOptions: PreprocessOptions { preprocessing ?? .beforeDensityClusters }

    /// The scoring to apply: the recorded one, or the only one an earlier bundle knew.
    public var scoringDefinition: ScoringDefinition { scoring ?? ScoringDefinition() }

    /// The precision to score with: the recorded one, else fp32.
    public var scoringPrecision: Precision { precision ?? .fp32 }

    /// Refuses a requested tier, BatchNorm mode or precision that differs from the bundle's (nil: no request).
    public func require(tier requested: Tier?, batchnorm requestedMode: BatchNormMode?, precision requestedPrecision: Precision? = nil,
                        bundle: URL) throws {
        if let requestedPrecision, requestedPrecision != scoringPrecision {
            throw BundleError.wrongPrecision(bundle: bundle.path, calibrated: scoringPrecision, requested: requestedPrecision)
        }
        if let requested, requested != tier {
            throw BundleError.wrongTier(bundle: bundle.path, trained: tier, requested: requested)
        }
        if let requestedMode, requestedMode != batchnorm {
            throw BundleError.wrongBatchNorm(bundle: bundle.path, trained: batchnorm, requested: requestedMode)
        }
    }
}

extension ModelManifest {
    /// The release files an imported bundle was made from, and by what and when.
    public struct Provenance: Codable, Sendable, Equatable {
        /// One release file: what it became, its name (without directories) and SHA-256.
        public struct Source: Codable, Sendable, Equatable {
            /// `vit`, `pointmae`, `mapper_2d_to_3d` or `mapper_3d_to_2d`.
            public var role: String
            public var file: String
            /// Lowercase hex digest of the whole file.
            public var sha256: String

            public init(role: String, file: String, sha256: String) { (self.role, self.file, self.sha256) = (role, file, sha256) }
        }

        public var sources: [Source]
        /// The importing tool and its version, e.g. `cfm import 0.1.0`.
        public var tool: String
        /// ISO 8601 time of the import.
        public var importedAt: String

        public init(sources: [Source], tool: String, importedAt: String) {
            (self.sources, self.tool, self.importedAt) = (sources, tool, importedAt)
        }

        enum CodingKeys: String, CodingKey {
            case sources, tool
            case importedAt = "imported_at"
        }
    }
}

extension ModelManifest {
    /// Which nominal training parts (`train/good`, by file stem) a bundle was trained on. The
    /// parts are taken in sorted stem order, so the choice never depends on how a directory
    /// lists them: first `heldOutIDs` are drawn and set aside for calibration, then the
    /// training parts are chosen from the rest by `rule`.
    public struct SampleSelection: Codable, Sendable, Equatable {
        /// How the training parts were chosen from those not held out.
        public enum Rule: String, Codable, Sendable, CaseIterable {
            /// Every part (no `--shots`).
            case all
            /// The first K in sorted stem order.
            case first
            /// K drawn uniformly without replacement with the seeded generator (the few-shot
            /// protocol: a different seed gives another subset, the same seed the same one).
            case random
        }

        public var rule: Rule
        /// Seed of the random draws (held-out parts and `random` shots).
        public var seed: UInt64
        /// The stems of the parts trained on, sorted.
        public var sampleIDs: [String]
        /// The stems of the parts held out for calibration (`cfm calibrate --calibration-split
        /// held_out`), sorted; empty when none were.
        public var heldOutIDs: [String]

        public init(rule: Rule, seed: UInt64, sampleIDs: [String], heldOutIDs: [String]) {
            (self.rule, self.seed, self.sampleIDs, self.heldOutIDs) = (rule, seed, sampleIDs, heldOutIDs)
        }

        enum CodingKeys: String, CodingKey {
            case rule, seed
            case sampleIDs = "sample_ids", heldOutIDs = "held_out_ids"
        }
    }
}

/// The nominal parts a calibration scores.
public enum CalibrationSplit: String, Codable, Sendable, CaseIterable {
    /// `validation/good` (MVTec 3D-AD).
    case validation
    /// The `train/good` parts the bundle's manifest records as held out from training
    /// (`training.selection.held_out_ids`): for layouts without a validation split (Eyecandies).
    case heldOut = "held_out"
}

/// Why a model bundle was refused.
public enum BundleError: Error, Equatable, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    case checksumMismatch(file: String, expected: String, found: String)
    case wrongTier(bundle: String, trained: Tier, requested: Tier)
    case wrongBatchNorm(bundle: String, trained: BatchNormMode, requested: BatchNormMode)
    case wrongPrecision(bundle: String, calibrated: Precision, requested: Precision)
    case wrongExtractors(bundle: String, file: String)
    case unwritable(directory: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason): "\(file): \(reason)"
        case let .checksumMismatch(file, expected, found): "\(file): checksum \(found), the manifest says \(expected) (corrupt or replaced)"
        case let .wrongTier(bundle, trained, requested):
            "\(bundle): trained for tier \(trained.rawValue), but tier \(requested.rawValue) is requested (leave the tier out: the bundle sets it)"
        case let .wrongBatchNorm(bundle, trained, requested):
            "\(bundle): trained with BatchNorm \(trained.rawValue), but \(requested.rawValue) is requested (leave it out: the bundle sets it)"
        case let .wrongPrecision(bundle, calibrated, requested):
            "\(bundle): calibrated at precision \(calibrated.rawValue), but \(requested.rawValue) is requested (leave it out, or re-run cfm calibrate --precision \(requested.rawValue))"
        case let .wrongExtractors(bundle, file):
            "\(bundle): trained with other extractor weights than \(file) (checksum differs)"
        case let .unwritable(directory, reason): "\(directory): cannot write the bundle: \(reason)"
        }
    }
}

/// A trained model: the two mappers and their manifest, in one directory.
public enum ModelBundle {
    /// Whether `directory` holds a manifest (bare mapper files, e.g. converted ones, have none).
    public static func hasManifest(_ directory: URL) -> Bool {
        FileManager.default.fileExists(atPath: directory.appendingPathComponent(BundleFile.manifest).path)
    }

    /// Reads and checks `directory`/manifest.yaml: the mappers' checksums and — when
    /// `extractors` is given — that the extractor weights are the ones it was trained with.
    public static func manifest(at directory: URL, extractors: URL?) throws -> ModelManifest {
        let url = directory.appendingPathComponent(BundleFile.manifest)
        let manifest: ModelManifest
        do {
            manifest = try YAMLDecoder().decode(ModelManifest.self, from: String(contentsOf: url, encoding: .utf8))
        } catch let error as DecodingError {
            throw BundleError.unreadable(file: url.path, reason: "not a cfm manifest (\(describe(error)))")
        } catch {
            throw BundleError.unreadable(file: url.path, reason: "\(error)")
        }
        for sum in manifest.mappers {
            let file = directory.appendingPathComponent(sum.file)
            let found = try Checksum.recompute(sum.checksum, of: file)
            guard found == sum.checksum else { throw BundleError.checksumMismatch(file: file.path, expected: sum.checksum, found: found) }
        }
        if let extractors {
            for sum in manifest.extractors where try Checksum.recompute(sum.checksum, of: extractors.appendingPathComponent(sum.file)) != sum.checksum {
                throw BundleError.wrongExtractors(bundle: directory.path, file: extractors.appendingPathComponent(sum.file).path)
            }
        }
        return manifest
    }

    /// The extractor files' checksums, as a manifest records them.
    public static func extractorChecksums(_ directory: URL) throws -> [ModelManifest.FileSum] {
        try [ExtractorFile.vit, ExtractorFile.pointMAE].map {
            .init(file: $0, checksum: try Checksum.sha256(of: directory.appendingPathComponent($0)))
        }
    }

    /// Writes both mappers and the manifest to `directory` atomically: into a temporary
    /// sibling first, then renamed over it, so an interrupted write leaves no half bundle.
    public static func write(_ manifest: ModelManifest, rgbToXYZ: FeatureMapper, xyzToRGB: FeatureMapper,
                             to directory: URL) throws {
        let fm = FileManager.default
        let parent = directory.deletingLastPathComponent(), prefix = ".\(directory.lastPathComponent).partial-"
        let staging = parent.appendingPathComponent("\(prefix)\(getpid())")
        do {
            // Leftovers of interrupted writes (never a bundle: only a completed one is renamed in place).
            for name in (try? fm.contentsOfDirectory(atPath: parent.path)) ?? [] where name.hasPrefix(prefix) {
                try? fm.removeItem(at: parent.appendingPathComponent(name))
            }
            try fm.createDirectory(at: staging, withIntermediateDirectories: true)
            var manifest = manifest
            manifest.mappers = []
            for (name, mapper) in [(BundleFile.rgbToXYZ, rgbToXYZ), (BundleFile.xyzToRGB, xyzToRGB)] {
                let url = staging.appendingPathComponent(name)
                try SafeTensors.write(mapper.tensors, to: url)
                manifest.mappers.append(.init(file: name, checksum: try Checksum.sha256(of: url)))
            }
            try YAMLEncoder().encode(manifest).write(to: staging.appendingPathComponent(BundleFile.manifest), atomically: true, encoding: .utf8)
            if fm.fileExists(atPath: directory.path) { try fm.removeItem(at: directory) }
            try fm.moveItem(at: staging, to: directory)
        } catch {
            try? fm.removeItem(at: staging)
            throw BundleError.unwritable(directory: directory.path, reason: "\(error)")
        }
    }

    /// Replaces the manifest of an existing bundle atomically (calibration).
    public static func update(_ manifest: ModelManifest, in directory: URL) throws {
        do {
            try YAMLEncoder().encode(manifest).write(to: directory.appendingPathComponent(BundleFile.manifest),
                                                     atomically: true, encoding: .utf8)
        } catch {
            throw BundleError.unwritable(directory: directory.path, reason: "\(error)")
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case let .keyNotFound(key, _): "missing key '\(key.stringValue)'"
        case .typeMismatch(_, let context), .dataCorrupted(let context), .valueNotFound(_, let context):
            context.codingPath.map(\.stringValue).joined(separator: ".") + ": " + context.debugDescription
        @unknown default: "\(error)"
        }
    }
}

/// Content checksums of bundle and extractor files, spelled `<kind>:<hex>`.
public enum Checksum {
    /// SHA-256 of the file, `sha256:` + 64 hex digits: what every manifest records now.
    public static func sha256(of url: URL) throws -> String {
        let digest = SHA256.hash(data: try contents(url))
        return "sha256:" + digest.map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }

    /// The checksum of `url` of the kind `recorded` names, for comparing with it: `sha256:`,
    /// or `fnv1a64:` (manifests of earlier versions, still read). Another kind is refused.
    public static func recompute(_ recorded: String, of url: URL) throws -> String {
        if recorded.hasPrefix("sha256:") { return try sha256(of: url) }
        if recorded.hasPrefix("fnv1a64:") { return try fnv1a64(of: url) }
        throw BundleError.unreadable(file: url.path, reason: "the manifest's checksum '\(recorded)' is of an unknown kind (re-run cfm train)")
    }

    /// 64-bit FNV-1a over the file's little-endian 64-bit words (a zero-padded tail), as 16 hex
    /// digits prefixed `fnv1a64:` — the checksum of `cfm-model-bundle/1` manifests.
    static func fnv1a64(of url: URL) throws -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        try contents(url).withUnsafeBytes { raw in
            let words = raw.count / 8
            for i in 0..<words {
                hash = (hash ^ UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))) &* 0x100_0000_01b3
            }
            var tail: UInt64 = 0
            for (k, byte) in raw[(8 * words)...].enumerated() { tail |= UInt64(byte) << (8 * UInt64(k)) }
            hash = (hash ^ tail ^ UInt64(raw.count)) &* 0x100_0000_01b3
        }
        return "fnv1a64:" + String(hash, radix: 16).leftPadded(to: 16)
    }

    private static func contents(_ url: URL) throws -> Data {
        do { return try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw BundleError.unreadable(file: url.path, reason: (error as NSError).localizedDescription)
        }
    }
}

extension String {
    fileprivate func leftPadded(to length: Int) -> String { String(repeating: "0", count: max(0, length - count)) + self }
}
