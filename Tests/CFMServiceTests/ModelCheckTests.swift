import CFMDetector
import CFMModels
import CFMService
import Foundation
import XCTest

/// `cfm serve --check-config`: the bundle sets tier, BatchNorm mode and preprocessing; a
/// config that asserts other values is refused naming them.
final class ModelCheckTests: XCTestCase {
    func testConfigMustAgreeWithTheBundle() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cfm-model-check-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let extractors = dir.appendingPathComponent("extractors"), bundle = dir.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: extractors, withIntermediateDirectories: true)
        for file in [ExtractorFile.vit, ExtractorFile.pointMAE] { try Data([0]).write(to: extractors.appendingPathComponent(file)) }
        var preprocessing = PreprocessOptions()
        preprocessing.background.seed = 4
        var manifest = ModelManifest(tier: .tiny, className: "cookie", rgbDim: 6, xyzDim: 4, hiddenDim: 5, batchnorm: .frame,
                                     preprocessing: preprocessing, extractors: [], mappers: [],
                                     training: .init(samples: 1, shots: nil, epochs: 1, batchSize: 1, learningRate: 1e-3,
                                                     pixelsPerSample: 0, seed: 0, finalLoss: 1, finalCosine3D: 0, finalCosine2D: 0,
                                                     seconds: 0),
                                     createdAt: "", toolVersion: "test")
        manifest.calibration = .init(threshold: 2.5, falseRejectRate: 0.1, samples: 10, min: 1, median: 2, p99: 2.4, max: 2.5)
        try ModelBundle.write(manifest, rgbToXYZ: .initial(inFeatures: 6, outFeatures: 4, seed: 0),
                              xyzToRGB: .initial(inFeatures: 4, outFeatures: 6, seed: 1), to: bundle)
        func config(_ extra: String) throws -> ServiceConfig {
            try ServiceConfig.parse("model: {extractors: \(extractors.path), bundle: \(bundle.path)\(extra)}\n")
        }

        let checked = try DetectorProcessing.check(try config(""))
        XCTAssertEqual(checked.tier, .tiny)
        XCTAssertEqual(checked.threshold, 2.5)
        XCTAssertEqual(try DetectorProcessing.check(try config(", tier: tiny, batchnorm: frame")).tier, .tiny)
        XCTAssertThrowsError(try DetectorProcessing.check(try config(", tier: small"))) { error in
            XCTAssertTrue("\(error)".contains("trained for tier tiny, but tier small is requested"), "\(error)")
        }
        XCTAssertThrowsError(try DetectorProcessing.check(try config(", batchnorm: running"))) { error in
            XCTAssertTrue("\(error)".contains("trained with BatchNorm frame, but running is requested"), "\(error)")
        }
        var skewed = try config("")
        skewed.preprocessing.seed = 4
        XCTAssertEqual(try DetectorProcessing.check(skewed).tier, .tiny)
        skewed.preprocessing.seed = 0
        XCTAssertThrowsError(try DetectorProcessing.check(skewed)) { error in
            XCTAssertTrue("\(error)".contains("preprocessing.seed is 0, but the bundle was trained with 4"), "\(error)")
        }
        XCTAssertEqual(try DetectorProcessing.preprocessing(config: try config(""), manifest: manifest), preprocessing)
    }
}
