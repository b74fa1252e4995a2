import CFMDetector
import CFMModels
import CFMTensor
import CFMTestSupport
import Foundation
import Testing

@Suite struct ModelBundleTests {
    func mapper(_ i: Int, _ o: Int, seed: UInt64) -> FeatureMapper {
        FeatureMapper.initial(inFeatures: i, outFeatures: o, seed: seed)
    }

    func manifest(tier: Tier, preprocessing: PreprocessOptions = PreprocessOptions()) -> ModelManifest {
        ModelManifest(tier: tier, className: "demo", rgbDim: 6, xyzDim: 4, hiddenDim: 5, batchnorm: .frame,
                      preprocessing: preprocessing, extractors: [], mappers: [],
                      training: .init(samples: 3, shots: nil, epochs: 2, batchSize: 4, learningRate: 1e-3, pixelsPerSample: 0,
                                      seed: 1, finalLoss: 0.5, finalCosine3D: 0.8, finalCosine2D: 0.7, seconds: 1),
                      createdAt: "2026-11-24T00:00:00Z", toolVersion: "test")
    }

    @Test func writeReadAndRefuse() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let bundle = dir.appendingPathComponent("model")
        try ModelBundle.write(manifest(tier: .small), rgbToXYZ: mapper(6, 4, seed: 1), xyzToRGB: mapper(4, 6, seed: 2), to: bundle)
        var read = try ModelBundle.manifest(at: bundle, extractors: nil)
        #expect(read.mappers.map(\.file) == [BundleFile.rgbToXYZ, BundleFile.xyzToRGB])
        #expect(read.mappers.allSatisfy { $0.checksum.hasPrefix("sha256:") && $0.checksum.count == 7 + 64 })
        #expect(read.training.finalCosine3D == 0.8 && read.calibration == nil)
        // No staging directory is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["model"])

        read.calibration = .init(threshold: 2.5, falseRejectRate: 0.1, samples: 10, min: 1, median: 2, p99: 2.4, max: 2.5)
        try ModelBundle.update(read, in: bundle)
        #expect(try ModelBundle.manifest(at: bundle, extractors: nil).calibration?.threshold == 2.5)

        // A requested tier or BatchNorm mode must agree with the trained one; nil asks for nothing.
        #expect(throws: BundleError.wrongTier(bundle: bundle.path, trained: .small, requested: .full)) {
            try read.require(tier: .full, batchnorm: nil, bundle: bundle)
        }
        #expect(throws: BundleError.wrongBatchNorm(bundle: bundle.path, trained: .frame, requested: .running)) {
            try read.require(tier: .small, batchnorm: .running, bundle: bundle)
        }
        try read.require(tier: nil, batchnorm: nil, bundle: bundle)
        // A modified mapper file no longer matches its checksum.
        let file = bundle.appendingPathComponent(BundleFile.xyzToRGB)
        var bytes = try Data(contentsOf: file)
        bytes[bytes.count - 1] ^= 1
        try bytes.write(to: file)
        #expect(throws: BundleError.self) { try ModelBundle.manifest(at: bundle, extractors: nil) }
    }

    @Test func preprocessingAndScoringAreRecorded() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var options = PreprocessOptions()
        options.removeBackground = false
        options.background.seed = 9
        options.background.inlierDistance = 0.0035
        options.mean = [0.5, 0.25, 0.125]
        let bundle = dir.appendingPathComponent("model")
        try ModelBundle.write(manifest(tier: .tiny, preprocessing: options), rgbToXYZ: mapper(6, 4, seed: 1),
                              xyzToRGB: mapper(4, 6, seed: 2), to: bundle)
        let text = try String(contentsOf: bundle.appendingPathComponent(BundleFile.manifest), encoding: .utf8)
        #expect(text.contains("background_removal: false") && text.contains("aggregation: product")
                && text.contains("image_score: max_over_sqrt_mean"))
        let read = try ModelBundle.manifest(at: bundle, extractors: nil)
        #expect(read.preprocessOptions == options)
        #expect(read.scoringDefinition == ScoringDefinition())
        #expect(text.contains("cluster_cleaning: dbscan") && text.contains("cluster_min_points: 30"))

        // A section written before DBSCAN existed has no cluster_cleaning: the pixel rule.
        let older = text.replacingOccurrences(of: "cluster_cleaning: dbscan", with: "")
        try older.write(to: bundle.appendingPathComponent(BundleFile.manifest), atomically: true, encoding: .utf8)
        #expect(try ModelBundle.manifest(at: bundle, extractors: nil).preprocessOptions.background.clusterCleaning == .pixelNeighbours)
    }

    /// The calibrated precision is recorded, read back and asserted; absent means fp32.
    @Test func precisionRoundTrip() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let bundle = dir.appendingPathComponent("model")
        try ModelBundle.write(manifest(tier: .tiny), rgbToXYZ: mapper(6, 4, seed: 1), xyzToRGB: mapper(4, 6, seed: 2), to: bundle)
        var read = try ModelBundle.manifest(at: bundle, extractors: nil)
        let text = try String(contentsOf: bundle.appendingPathComponent(BundleFile.manifest), encoding: .utf8)
        #expect(read.precision == nil && read.scoringPrecision == .fp32 && !text.contains("precision"), "absent = fp32")
        try read.require(tier: nil, batchnorm: nil, precision: .fp32, bundle: bundle)

        read.precision = .bf16
        try ModelBundle.update(read, in: bundle)
        let again = try ModelBundle.manifest(at: bundle, extractors: nil)
        #expect(again == read && again.scoringPrecision == .bf16)
        #expect(try String(contentsOf: bundle.appendingPathComponent(BundleFile.manifest), encoding: .utf8).contains("precision: bf16"))
        #expect(throws: BundleError.wrongPrecision(bundle: bundle.path, calibrated: .bf16, requested: .fp32)) {
            try again.require(tier: nil, batchnorm: nil, precision: .fp32, bundle: bundle)
        }
    }

    /// A bf16 bundle (or a bf16 request) on a CPU without AVX512-BF16 is refused with the reason,
    /// before any weight is read (the extractors here do not even exist).
    @Test func bf16IsRefusedOnACPUWithoutIt() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let bundle = dir.appendingPathComponent("model"), missing = dir.appendingPathComponent("no-extractors")
        var bf16 = manifest(tier: .tiny)
        bf16.precision = .bf16
        try ModelBundle.write(bf16, rgbToXYZ: mapper(6, 4, seed: 1), xyzToRGB: mapper(4, 6, seed: 2), to: bundle)
        let without = CPUFeatures(flags: [], avx512BF16: false)
        #expect(throws: PrecisionError.unsupported(.bf16)) {
            try DetectorWeights.load(extractors: missing, model: bundle, cpu: without)
        }
        #expect(throws: PrecisionError.unsupported(.bf16)) {
            try DetectorWeights.load(extractors: missing, model: nil, tier: .tiny, precision: .run(.bf16), cpu: without)
        }
        #expect(throws: BundleError.wrongPrecision(bundle: bundle.path, calibrated: .bf16, requested: .fp32)) {
            try DetectorWeights.load(extractors: missing, model: bundle, precision: .required(.fp32), cpu: without)
        }
    }

    /// A `cfm-model-bundle/1` manifest (no preprocessing or scoring section, FNV-1a checksums)
    /// still loads, with the defaults it was trained with.
    @Test func earlierBundlesLoadWithTheirDefaults() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let bundle = dir.appendingPathComponent("model")
        var options = PreprocessOptions()
        options.size = 112
        try ModelBundle.write(manifest(tier: .tiny, preprocessing: options), rgbToXYZ: mapper(6, 4, seed: 1),
                              xyzToRGB: mapper(4, 6, seed: 2), to: bundle)
        var old = try ModelBundle.manifest(at: bundle, extractors: nil)
        (old.preprocessing, old.scoring, old.format) = (nil, nil, "cfm-model-bundle/1")
        // The FNV-1a checksums of version 1, computed independently here.
        func fnv(_ data: Data) -> String {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            let words = data.count / 8
            for i in 0..<words {
                var word: UInt64 = 0
                for k in 0..<8 { word |= UInt64(data[data.startIndex + 8 * i + k]) << (8 * UInt64(k)) }
                hash = (hash ^ word) &* 0x100_0000_01b3
            }
            var tail: UInt64 = 0
            for (k, byte) in data[(data.startIndex + 8 * words)...].enumerated() { tail |= UInt64(byte) << (8 * UInt64(k)) }
            hash = (hash ^ tail ^ UInt64(data.count)) &* 0x100_0000_01b3
            let hex = String(hash, radix: 16)
            return "fnv1a64:" + String(repeating: "0", count: 16 - hex.count) + hex
        }
        old.mappers = try old.mappers.map { .init(file: $0.file, checksum: fnv(try Data(contentsOf: bundle.appendingPathComponent($0.file)))) }
        try ModelBundle.update(old, in: bundle)
        let text = try String(contentsOf: bundle.appendingPathComponent(BundleFile.manifest), encoding: .utf8)
        #expect(!text.contains("preprocessing") && !text.contains("scoring"))

        let read = try ModelBundle.manifest(at: bundle, extractors: nil)
        var pixelRule = PreprocessOptions()
        pixelRule.background.clusterCleaning = .pixelNeighbours
        #expect(read.preprocessing == nil && read.preprocessOptions == pixelRule, "version 1 bundles used the pixel rule")
        #expect(read.scoringDefinition == ScoringDefinition())
        #expect(read.mappers.allSatisfy { $0.checksum.hasPrefix("fnv1a64:") })
        // A corrupt file is still caught under the old checksum.
        let file = bundle.appendingPathComponent(BundleFile.rgbToXYZ)
        var bytes = try Data(contentsOf: file)
        bytes[bytes.count - 1] ^= 1
        try bytes.write(to: file)
        #expect(throws: BundleError.self) { try ModelBundle.manifest(at: bundle, extractors: nil) }
    }

    @Test func checksumsDifferForDifferentContent() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = dir.appendingPathComponent("a"), b = dir.appendingPathComponent("b")
        try Data("abc".utf8).write(to: a)
        try Data([1, 2, 3, 4, 5, 6, 7, 8, 9, 0]).write(to: b)
        // The FIPS 180-2 test vector of "abc".
        #expect(try Checksum.sha256(of: a) == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(try Checksum.sha256(of: a) != Checksum.sha256(of: b))
        #expect(throws: BundleError.self) { try Checksum.recompute("md5:00", of: a) }
    }
}
