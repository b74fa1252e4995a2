@testable import CFMImport
import CFMDetector
import CFMModels
import CFMTensor
import CFMTestSupport
import Crypto
import Foundation
import XCTest

/// The fixtures of `tools/reference/make_import_fixtures.py`: release files of a tiny
/// architecture with the upstream key names, and what `tools/convert_checkpoints.py` made of them.
enum ImportFixtures {
    /// ViT dim 16 / 2 blocks, Point-MAE dim 32 / 2 blocks (the converter's size constants as patched there).
    static let architecture = ReleaseArchitecture(
        vit: .init(imageSize: 224, patchSize: 8, dim: 16, heads: 1, depth: 2, mlpHidden: 64),
        pointMAE: .init(groups: 1024, members: 128, hidden1: 128, hidden2: 256, hidden3: 512, dim: 32, heads: 1,
                        depth: 2, mlpHidden: 128, posHidden: 128))

    static func url(_ name: String) -> URL { Fixtures.url("import/\(name)") }

    struct Expected: Decodable {
        struct Digest: Decodable { var shape: [Int], sha256: String }
        var dropped: Int
        var tensors: [String: Digest]
    }

    /// The converter's output for each fixture file.
    static func expected() throws -> [String: Expected] {
        try JSONDecoder().decode([String: Expected].self, from: Data(contentsOf: url("expected.json")))
    }

    /// SHA-256 of a tensor's float32 little-endian bytes (as the generator digests them).
    static func digest(_ tensor: Tensor) -> String {
        tensor.withUnsafeBufferPointer { SHA256.hash(data: UnsafeRawBufferPointer($0)) }.map { String(format: "%02x", $0) }.joined()
    }
}

final class CheckpointImportTests: XCTestCase {
    private var work: URL!

    override func setUpWithError() throws { work = try makeTemporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: work) }

    private func options(vit: String = "dino_vitbase8_pretrain.pth", pointMAE: String = "pretrain.pth",
                         mappers: Bool = true) -> CheckpointImport.Options {
        .init(vit: ImportFixtures.url(vit), pointMAE: ImportFixtures.url(pointMAE),
              rgbToXYZ: mappers ? ImportFixtures.url("CFM_2Dto3D_tiny_250ep_4bs.pth") : nil,
              xyzToRGB: mappers ? ImportFixtures.url("CFM_3Dto2D_tiny_250ep_4bs.pth") : nil,
              out: work.appendingPathComponent("imported"), toolVersion: "test", architecture: ImportFixtures.architecture)
    }

    /// Every tensor of `output` equals, bit for bit, the converter's output for `source`.
    private func assertConverterParity(_ output: URL, source: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let expected = try XCTUnwrap(try ImportFixtures.expected()[source], "no expectation for \(source)")
        let written = try SafeTensors(contentsOf: output)
        XCTAssertEqual(Set(written.entries.keys), Set(expected.tensors.keys), source, file: file, line: line)
        for (name, digest) in expected.tensors {
            let tensor = try written.tensor(name)
            XCTAssertEqual(tensor.shape, digest.shape, "\(source) \(name)", file: file, line: line)
            XCTAssertEqual(ImportFixtures.digest(tensor), digest.sha256, "\(source) \(name) differs from convert_checkpoints.py",
                           file: file, line: line)
        }
    }

    func testImportsTheReleaseFilesBitForBitAndWritesACompleteBundle() throws {
        let result = try CheckpointImport.run(options())
        let out = work.appendingPathComponent("imported")
        let extractors = out.appendingPathComponent("extractors"), model = out.appendingPathComponent("model")
        try assertConverterParity(extractors.appendingPathComponent(ExtractorFile.vit), source: "dino_vitbase8_pretrain.pth")
        try assertConverterParity(extractors.appendingPathComponent(ExtractorFile.pointMAE), source: "pretrain.pth")
        try assertConverterParity(model.appendingPathComponent(BundleFile.rgbToXYZ), source: "CFM_2Dto3D_tiny_250ep_4bs.pth")
        try assertConverterParity(model.appendingPathComponent(BundleFile.xyzToRGB), source: "CFM_3Dto2D_tiny_250ep_4bs.pth")

        let expected = try ImportFixtures.expected()
        XCTAssertEqual(result.files.map(\.role), ["vit", "pointmae", "mapper_2d_to_3d", "mapper_3d_to_2d"])
        XCTAssertEqual(result.files.map(\.dropped.count), [expected["dino_vitbase8_pretrain.pth"]!.dropped, expected["pretrain.pth"]!.dropped, 0, 0])
        XCTAssertEqual(result.files[1].dropped.count, 7, "decoder, mask token, num_batches_tracked")
        XCTAssertEqual(result.tier, .tiny)

        // The bundle is accepted the way infer / calibrate / eval / serve check it.
        let manifest = try ModelBundle.manifest(at: model, extractors: extractors)
        XCTAssertNoThrow(try manifest.require(tier: .tiny, batchnorm: .frame, bundle: model))
        XCTAssertEqual(manifest.preprocessing, PreprocessOptions(), "the official preprocessing")
        XCTAssertEqual(manifest.className, "tiny")
        XCTAssertEqual([manifest.rgbDim, manifest.xyzDim, manifest.hiddenDim], [16, 32, 24])
        XCTAssertEqual(manifest.batchnorm, .frame)
        XCTAssertEqual([manifest.training.epochs, manifest.training.batchSize], [250, 4])
        XCTAssertNil(manifest.calibration)
        let provenance = try XCTUnwrap(manifest.provenance)
        XCTAssertEqual(provenance.tool, "cfm import test")
        XCTAssertEqual(provenance.sources.map(\.file), ["dino_vitbase8_pretrain.pth", "pretrain.pth",
                                                        "CFM_2Dto3D_tiny_250ep_4bs.pth", "CFM_3Dto2D_tiny_250ep_4bs.pth"])
        for source in provenance.sources {
            let bytes = try Data(contentsOf: ImportFixtures.url(source.file))
            XCTAssertEqual(source.sha256, SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined())
        }
        let scorer = try CrossmodalScorer.load(bundle: model, rgbDim: 16, xyzDim: 32, tier: .tiny)
        XCTAssertEqual(scorer.rgbToXYZ.hidden, 24)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: work.path), ["imported"], "no staging leftovers")
    }

    func testFullDINOCheckpointUsesTheTeacherAcrossDTypesAndStrides() throws {
        try CheckpointImport.run(options(vit: "dino_full_checkpoint.pth", mappers: false))
        let out = work.appendingPathComponent("imported")
        try assertConverterParity(out.appendingPathComponent("extractors/\(ExtractorFile.vit)"), source: "dino_full_checkpoint.pth")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("model").path), "no mappers, no bundle")
    }

    func testTimmSafetensorsViT() throws {
        let result = try CheckpointImport.run(options(vit: "vit_timm.safetensors", mappers: false))
        try assertConverterParity(work.appendingPathComponent("imported/extractors/\(ExtractorFile.vit)"), source: "vit_timm.safetensors")
        XCTAssertEqual(result.files[0].dropped, ["head.bias", "head.weight"])
    }

    // MARK: - Refused inputs: one line each, nothing written

    private func assertRefused(_ options: CheckpointImport.Options, _ fragment: String,
                               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try CheckpointImport.run(options), file: file, line: line) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains(fragment), "«\(message)» lacks «\(fragment)»", file: file, line: line)
            XCTAssertFalse(message.contains("\n"), "not one line: \(message)", file: file, line: line)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: work.path), [], "something was written", file: file, line: line)
    }

    func testRefusesAPickleThatCallsOSSystem() {
        assertRefused(options(vit: "posix_system.pth"), "refusing to unpickle posix.system")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/cfm-import-pwned"))
    }

    func testRefusesATruncatedZip() throws {
        let bytes = try Data(contentsOf: ImportFixtures.url("pretrain.pth"))
        let truncated = work.deletingLastPathComponent().appendingPathComponent("truncated-\(UUID().uuidString).pth")
        try bytes.prefix(bytes.count * 2 / 3).write(to: truncated)
        defer { try? FileManager.default.removeItem(at: truncated) }
        var opts = options()
        opts.pointMAE = truncated
        assertRefused(opts, "not a PyTorch zip checkpoint")
    }

    func testRefusesAStorageShorterThanItsTensor() {
        assertRefused(options(vit: "short_storage.pth"), "storage 0:")
    }

    func testRefusesAWrongKeySet() {
        assertRefused(options(vit: "missing_key.pth"), "missing key blocks.1.mlp.fc2.bias (expected shape [16])")
        // A Point-MAE file given as the ViT.
        assertRefused(options(vit: "pretrain.pth"), "missing key cls_token")
    }

    func testRefusesSwappedMappers() {
        var opts = options()
        (opts.rgbToXYZ, opts.xyzToRGB) = (opts.xyzToRGB, opts.rgbToXYZ)
        assertRefused(opts, "is 3D→2D, not 2D→3D")
    }

    func testRefusesAnExistingOutput() throws {
        let out = work.appendingPathComponent("imported")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: out.appendingPathComponent("mine.txt"))
        XCTAssertThrowsError(try CheckpointImport.run(options())) { XCTAssertTrue("\($0)".contains("exists and is not empty")) }
        XCTAssertEqual(try String(contentsOf: out.appendingPathComponent("mine.txt"), encoding: .utf8), "keep")
    }

    // MARK: - Pieces

    func testTierFromTheMapperWidths() {
        XCTAssertEqual(ReleaseArchitecture.official.tier(xyzDim: 1152), .full, "the released mappers read blocks 3, 7, 11")
        XCTAssertEqual(ReleaseArchitecture.official.tier(xyzDim: 384), .tiny)
        XCTAssertNil(ReleaseArchitecture.official.tier(xyzDim: 768))
    }

    func testMapperFileNames() {
        let name = MapperFileName("CFM_2Dto3D_cable_gland_250ep_4bs.pth")
        XCTAssertEqual(name?.className, "cable_gland")
        XCTAssertEqual(name?.epochs, 250)
        XCTAssertEqual(name?.batchSize, 4)
        XCTAssertNil(MapperFileName("mapper_2d_to_3d.pth"))
    }
}
