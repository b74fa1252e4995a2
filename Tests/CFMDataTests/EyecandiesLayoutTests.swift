import CFMData
import CFMTensor
import CFMTestSupport
import Foundation
import Testing

/// The Eyecandies layout (as the official preprocessing writes it) read through `MVTec3DClass`,
/// on the synthetic generator of that layout.
@Suite struct EyecandiesLayoutTests {
    static func generate(_ directory: URL) throws {
        let options = SyntheticDataset.Options(size: 48, seed: 3, classes: [.cookie], trainCount: 2, validationCount: 0,
                                               testCountPerType: 3)
        #expect(try SyntheticDataset.generateEyecandies(options, to: directory) == 2 + 3 + 3)
    }

    @Test func readsTheEyecandiesLayout() throws {
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        try Self.generate(root)
        let dataset = try MVTec3DDataset(directory: root)
        #expect(try dataset.classNames() == ["cookie"])
        let cookie = try dataset.class("cookie")
        #expect(cookie.layout == .eyecandies)
        #expect(cookie.layout.splits == [.train, .test])
        #expect(try cookie.samples(.train).map(\.key) == ["good/000", "good/001"])
        let test = try cookie.samples(.test)
        #expect(test.map(\.key) == ["bad/000", "bad/001", "bad/002", "good/000", "good/001", "good/002"])
        #expect(test.allSatisfy { $0.gt != nil })
        // Colour masks arrive as grey 0 / 255; good parts' masks are empty, bad parts' are not.
        for sample in test {
            let loaded = try sample.load()
            #expect(loaded.mask.height == 48 && loaded.cloud.shape == [48, 48, 3])
            #expect(loaded.mask.bytes.allSatisfy { $0 == 0 || $0 == 255 })
            #expect(loaded.mask.bytes.contains(255) == !sample.isNominal, "\(sample.key)")
        }
        #expect(throws: DatasetError.self) { try cookie.samples(.validation) }
    }

    @Test func mvtecFoldersStayMVTec() throws {
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let options = SyntheticDataset.Options(size: 32, seed: 1, classes: [.box], trainCount: 1, validationCount: 1,
                                               testCountPerType: 1)
        try SyntheticDataset.generate(options, to: root)
        let box = try MVTec3DDataset(directory: root).class("box")
        #expect(box.layout == .mvtec3d)
        #expect(try box.samples(.validation).count == 1)
    }
}
