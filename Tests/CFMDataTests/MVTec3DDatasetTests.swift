import CFMData
import CFMTensor
import CFMTestSupport
import Foundation
import Testing

/// The MVTec 3D-AD reader on small temporary trees, including the clutter real copies carry.
@Suite final class MVTec3DDatasetTests {
    let root: URL
    let widget: URL

    /// `root/widget` with 2 train, 1 validation, 2 test/good (no gt) and 2 test/crack samples,
    /// plus a `calibration` folder, `.DS_Store` files and a licence file to ignore.
    init() throws {
        root = try makeTemporaryDirectory()
        widget = root.appendingPathComponent("widget")
        for (folder, ids, withGT) in [("train/good", ["001", "000"], false), ("validation/good", ["000"], false),
                                      ("test/good", ["000", "001"], false), ("test/crack", ["000", "001"], true)] {
            for id in ids { try writeSample(folder, id, gt: withGT) }
        }
        let clutter = [widget.appendingPathComponent("calibration/camera_parameters.json"),
                       root.appendingPathComponent("license.txt"), root.appendingPathComponent(".DS_Store"),
                       widget.appendingPathComponent("test/.DS_Store"), widget.appendingPathComponent("test/crack/rgb/.DS_Store"),
                       widget.appendingPathComponent("test/crack/xyz/notes.txt")]
        for file in clutter { try write(Data("x".utf8), to: file) }
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    private func write(_ data: Data, to file: URL) throws {
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: file)
    }

    private func writeSample(_ folder: String, _ id: String, gt: Bool, height: Int = 3, width: Int = 4) throws {
        let base = widget.appendingPathComponent(folder)
        for kind in ["rgb", "xyz"] + (gt ? ["gt"] : []) {
            try FileManager.default.createDirectory(at: base.appendingPathComponent(kind), withIntermediateDirectories: true)
        }
        try PNGFile.write(RGBImage(height: height, width: width, bytes: [UInt8](repeating: 90, count: height * width * 3)),
                          to: base.appendingPathComponent("rgb/\(id).png"))
        try TIFFFile.write(Tensor(shape: [height, width, 3], repeating: 0.5), to: base.appendingPathComponent("xyz/\(id).tiff"))
        if gt {
            try PNGFile.write(GrayImage(height: height, width: width, repeating: 255), to: base.appendingPathComponent("gt/\(id).png"))
        }
    }

    @Test func listsClassesSplitsAndDefectTypes() throws {
        let dataset = try MVTec3DDataset(directory: root)
        #expect(try dataset.classNames() == ["widget"])
        let widget = try dataset.class("widget")
        #expect(widget.name == "widget")
        #expect(try widget.defectTypes(.test) == ["crack", "good"])
        #expect(try widget.defectTypes(.train) == ["good"])
    }

    @Test func pairsFilesByStemInSortedOrder() throws {
        let widget = try MVTec3DClass(directory: widget)
        let train = try widget.samples(.train)
        #expect(train.map(\.id) == ["000", "001"])
        #expect(train.allSatisfy { $0.isNominal && $0.gt == nil && $0.split == .train })
        #expect(train[1].rgb.lastPathComponent == "001.png" && train[1].xyz.lastPathComponent == "001.tiff")
        let test = try widget.samples(.test)
        #expect(test.map(\.key) == ["crack/000", "crack/001", "good/000", "good/001"])
        #expect(test[0].gt?.path == self.widget.appendingPathComponent("test/crack/gt/000.png").path)
        #expect(!test[0].isNominal && test[2].isNominal)
        #expect(try widget.samples(.validation).count == 1)
    }

    @Test func loadsAndChecksSizes() throws {
        let test = try MVTec3DClass(directory: widget).samples(.test)
        let crack = try test[0].load()
        #expect(crack.cloud.shape == [3, 4, 3] && crack.mask.bytes.allSatisfy { $0 == 255 })
        let good = try test[2].load()
        #expect(good.mask == GrayImage(height: 3, width: 4, repeating: 0))
        try writeSample("test/good", "001", gt: false, height: 5, width: 4)
        try TIFFFile.write(Tensor(shape: [3, 4, 3]), to: widget.appendingPathComponent("test/good/xyz/001.tiff"))
        #expect(throws: DatasetError.sizeMismatch(sample: "test/good/001", detail: "rgb 5×4, xyz 3×4, gt 5×4 differ")) {
            try test[3].load()
        }
    }

    @Test func missingPartnerNamesBothFiles() throws {
        let xyz = widget.appendingPathComponent("test/crack/xyz/001.tiff")
        try FileManager.default.removeItem(at: xyz)
        let error = #expect(throws: DatasetError.self) { try MVTec3DClass(directory: self.widget).samples(.test) }
        #expect(error == .unpairedFile(file: widget.appendingPathComponent("test/crack/rgb/001.png").path, missing: xyz.path))
        #expect(error?.description == "\(widget.path)/test/crack/rgb/001.png: no matching \(xyz.path)")
    }

    @Test func strayMaskIsUnpaired() throws {
        let stray = widget.appendingPathComponent("test/crack/gt/007.png")
        try PNGFile.write(GrayImage(height: 3, width: 4, repeating: 0), to: stray)
        #expect(throws: DatasetError.unpairedFile(file: stray.path, missing: widget.appendingPathComponent("test/crack/rgb/007.png").path)) {
            try MVTec3DClass(directory: self.widget).samples(.test, defect: "crack")
        }
    }

    @Test func defectWithoutMasksIsMissingDirectory() throws {
        try FileManager.default.removeItem(at: widget.appendingPathComponent("test/crack/gt"))
        let error = #expect(throws: DatasetError.self) { try MVTec3DClass(directory: self.widget).samples(.test) }
        guard case .missingDirectory(widget.appendingPathComponent("test/crack/gt").path, _)? = error else {
            Issue.record("expected the missing gt folder, got \(String(describing: error))")
            return
        }
    }

    @Test func missingSplitAndClassAreReported() throws {
        try FileManager.default.removeItem(at: widget.appendingPathComponent("validation"))
        let error = #expect(throws: DatasetError.self) { try MVTec3DClass(directory: self.widget).samples(.validation) }
        guard case .missingDirectory(widget.appendingPathComponent("validation").path, _)? = error else {
            Issue.record("expected the missing validation folder, got \(String(describing: error))")
            return
        }
        #expect(throws: DatasetError.self) { try MVTec3DDataset(directory: self.root).class("gadget") }
    }

    @Test func corruptSampleFileIsWrapped() throws {
        let rgb = widget.appendingPathComponent("train/good/rgb/000.png")
        try Data("not a png".utf8).write(to: rgb)
        let error = #expect(throws: DatasetError.self) { try MVTec3DClass(directory: self.widget).samples(.train)[0].load() }
        guard case .file(.corrupt(rgb.path, _))? = error else {
            Issue.record("expected a corrupt-file error naming \(rgb.path), got \(String(describing: error))")
            return
        }
    }
}
