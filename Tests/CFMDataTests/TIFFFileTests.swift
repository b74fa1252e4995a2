import CFMData
import CFMTensor
import CFMTestSupport
import Foundation
import Testing

/// Float32 TIFF round trips through every layout libtiff writes, files written by Pillow, and
/// typed errors for wrong, corrupt and missing files.
@Suite final class TIFFFileTests {
    let dir: URL
    init() throws { dir = try makeTemporaryDirectory() }
    deinit { try? FileManager.default.removeItem(at: dir) }

    /// A random cloud with exact zeros ("no measurement") sprinkled in.
    static func randomTensor(_ shape: [Int], seed: UInt64) -> Tensor {
        var random = SeededRandom(seed: seed)
        return Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in
            random.uniform() < 0.1 ? 0 : random.normal() * 0.2
        })
    }

    static let layouts: [TIFFFile.Layout] = [
        .plain,
        .init(byteOrder: .bigEndian),
        .init(tileSize: 16),
        .init(byteOrder: .bigEndian, tileSize: 32, separatePlanes: true),
        .init(separatePlanes: true),
        .init(compression: .lzw),
        .init(byteOrder: .bigEndian, compression: .deflate),
        .init(compression: .packBits, tileSize: 16, separatePlanes: true),
        .init(compression: .deflate, floatingPointPredictor: true, tileSize: 16),
    ]

    @Test(arguments: layouts)
    func pointCloudRoundTrip(layout: TIFFFile.Layout) throws {
        // 37 × 53 leaves partial edge tiles and a short last strip.
        let cloud = Self.randomTensor([37, 53, 3], seed: 11)
        let file = dir.appendingPathComponent("cloud.tiff")
        try TIFFFile.write(cloud, to: file, layout: layout)
        #expect(try TIFFFile.readPointCloud(file) == cloud)
    }

    @Test(arguments: layouts)
    func mapRoundTrip(layout: TIFFFile.Layout) throws {
        let map = Self.randomTensor([29, 18], seed: 12)
        let file = dir.appendingPathComponent("map.tiff")
        try TIFFFile.write(map, to: file, layout: layout)
        #expect(try TIFFFile.readMap(file) == map)
    }

    @Test func plainFilesAreDeterministic() throws {
        let cloud = Self.randomTensor([8, 5, 3], seed: 13)
        let a = dir.appendingPathComponent("a.tiff"), b = dir.appendingPathComponent("b.tiff")
        try TIFFFile.write(cloud, to: a)
        try TIFFFile.write(cloud, to: b)
        #expect(try Data(contentsOf: a) == Data(contentsOf: b))
    }

    @Test(arguments: ["map_pillow", "map_pillow_lzw"])
    func readsPillowMaps(name: String) throws {
        let map = try TIFFFile.readMap(Fixtures.url("image_files/\(name).tiff"))
        #expect(map == (try Fixtures.open("image_files.safetensors").tensor("\(name).map")))
    }

    /// Big-endian with the floating-point predictor, written by hand (libtiff 4.5 cannot write it).
    @Test func readsBigEndianPredictorCloud() throws {
        let cloud = try TIFFFile.readPointCloud(Fixtures.url("image_files/cloud_big_endian_predictor.tiff"))
        #expect(cloud == (try Fixtures.open("image_files.safetensors").tensor("cloud_big_endian_predictor.cloud")))
    }

    @Test func bigEndianPredictorIsRefusedOnWrite() {
        let file = dir.appendingPathComponent("x.tiff")
        #expect(throws: ImageFileError.self) {
            try TIFFFile.write(Tensor(shape: [2, 2]), to: file,
                               layout: .init(byteOrder: .bigEndian, compression: .deflate, floatingPointPredictor: true))
        }
    }

    @Test func wrongChannelCountNamesFileAndExpectation() throws {
        let file = dir.appendingPathComponent("xyz/003.tiff")
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try TIFFFile.write(Self.randomTensor([4, 4], seed: 14), to: file)
        let error = #expect(throws: ImageFileError.self) { try TIFFFile.readPointCloud(file) }
        #expect(error == .unexpectedFormat(file: file.path, found: "1 channel of 32-bit float", expected: "3 float32 channels"))
        #expect(error?.description == "\(file.path): 1 channel of 32-bit float, expected 3 float32 channels")
        let cloud = dir.appendingPathComponent("cloud.tiff")
        try TIFFFile.write(Self.randomTensor([4, 4, 3], seed: 15), to: cloud)
        #expect(throws: ImageFileError.unexpectedFormat(file: cloud.path, found: "3 channels of 32-bit float",
                                                        expected: "1 float32 channel")) { try TIFFFile.readMap(cloud) }
    }

    @Test func integerTIFFIsRejected() {
        let file = Fixtures.url("image_files/rgb8.tiff")
        #expect(throws: ImageFileError.unexpectedFormat(file: file.path, found: "3 channels of 8-bit unsigned integer",
                                                        expected: "3 float32 channels")) { try TIFFFile.readPointCloud(file) }
    }

    @Test func corruptFilesGiveTypedErrors() throws {
        var random = SeededRandom(seed: 16)
        let garbage = dir.appendingPathComponent("garbage.tiff")
        try Data((0..<500).map { _ in UInt8(truncatingIfNeeded: random.next()) }).write(to: garbage)
        let valid = dir.appendingPathComponent("valid.tiff"), truncated = dir.appendingPathComponent("truncated.tiff")
        try TIFFFile.write(Self.randomTensor([64, 64, 3], seed: 17), to: valid, layout: .init(compression: .deflate))
        try Data(contentsOf: valid).prefix(3000).write(to: truncated)
        let empty = dir.appendingPathComponent("empty.tiff")
        try Data().write(to: empty)
        for file in [garbage, truncated, empty] {
            let error = #expect(throws: ImageFileError.self) { try TIFFFile.readPointCloud(file) }
            guard case let .corrupt(name, reason)? = error else {
                Issue.record("\(file.lastPathComponent): expected .corrupt, got \(String(describing: error))")
                continue
            }
            #expect(name == file.path && !reason.isEmpty, "\(reason)")
        }
    }

    @Test func missingFileIsUnreadable() {
        let file = dir.appendingPathComponent("xyz/404.tiff")
        #expect(throws: ImageFileError.unreadable(file: file.path, reason: "no such file")) { try TIFFFile.readPointCloud(file) }
    }

    @Test func unwritableShapesAndPathsGiveTypedErrors() {
        let file = dir.appendingPathComponent("x.tiff")
        #expect(throws: ImageFileError.self) { try TIFFFile.write(Tensor(shape: [2, 2, 2]), to: file) }
        #expect(throws: ImageFileError.self) { try TIFFFile.write(Tensor(shape: [2, 2]), to: file, layout: .init(tileSize: 10)) }
        let missingDir = dir.appendingPathComponent("no/such/x.tiff")
        let error = #expect(throws: ImageFileError.self) { try TIFFFile.write(Tensor(shape: [2, 2]), to: missingDir) }
        guard case .unwritable(missingDir.path, _)? = error else {
            Issue.record("expected .unwritable naming the file, got \(String(describing: error))")
            return
        }
    }
}
