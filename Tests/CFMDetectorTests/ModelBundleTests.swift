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

    func manifest(tier: Tier) -> ModelManifest {
        ModelManifest(tier: tier, className: "demo", rgbDim: 6, xyzDim: 4, hiddenDim: 5, batchnorm: .frame, extractors: [], mappers: [],
                      training: .init(samples: 3, shots: nil, epochs: 2, batchSize: 4, learningRate: 1e-3, pixelsPerSample: 0,
                                      seed: 1, finalLoss: 0.5, finalCosine3D: 0.8, finalCosine2D: 0.7, seconds: 1),
                      createdAt: "2026-11-24T00:00:00Z", toolVersion: "test")
    }

    @Test func writeReadAndRefuse() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let bundle = dir.appendingPathComponent("model")
        try ModelBundle.write(manifest(tier: .small), rgbToXYZ: mapper(6, 4, seed: 1), xyzToRGB: mapper(4, 6, seed: 2), to: bundle)
        var read = try ModelBundle.manifest(at: bundle, tier: .small, extractors: nil)
        #expect(read.mappers.map(\.file) == [BundleFile.rgbToXYZ, BundleFile.xyzToRGB])
        #expect(read.training.finalCosine3D == 0.8 && read.calibration == nil)
        // No staging directory is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["model"])

        read.calibration = .init(threshold: 2.5, falseRejectRate: 0.1, samples: 10, min: 1, median: 2, p99: 2.4, max: 2.5)
        try ModelBundle.update(read, in: bundle)
        #expect(try ModelBundle.manifest(at: bundle, tier: .small, extractors: nil).calibration?.threshold == 2.5)

        #expect(throws: BundleError.wrongTier(bundle: bundle.path, trained: .small, requested: .full)) {
            try ModelBundle.manifest(at: bundle, tier: .full, extractors: nil)
        }
        // A modified mapper file no longer matches its checksum.
        let file = bundle.appendingPathComponent(BundleFile.xyzToRGB)
        var bytes = try Data(contentsOf: file)
        bytes[bytes.count - 1] ^= 1
        try bytes.write(to: file)
        #expect(throws: BundleError.self) { try ModelBundle.manifest(at: bundle, tier: .small, extractors: nil) }
    }

    @Test func checksumsDifferForDifferentContent() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = dir.appendingPathComponent("a"), b = dir.appendingPathComponent("b")
        try Data([1, 2, 3, 4, 5, 6, 7, 8, 9]).write(to: a)
        try Data([1, 2, 3, 4, 5, 6, 7, 8, 9, 0]).write(to: b)
        #expect(try Checksum.of(a) != Checksum.of(b))
        #expect(try Checksum.of(a) == Checksum.of(a))
        #expect(try Checksum.of(a).hasPrefix("fnv1a64:"))
    }
}
