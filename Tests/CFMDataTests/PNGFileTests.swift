import CFMData
import CFMTensor
import CFMTestSupport
import Foundation
import Testing

/// PNG round trips, Pillow-compatible conversions of every colour type, and typed errors.
@Suite final class PNGFileTests {
    let dir: URL
    init() throws { dir = try makeTemporaryDirectory() }
    deinit { try? FileManager.default.removeItem(at: dir) }

    static func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var random = SeededRandom(seed: seed)
        return (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    }

    @Test func rgbRoundTripIsExactAndDeterministic() throws {
        let image = RGBImage(height: 17, width: 23, bytes: Self.randomBytes(17 * 23 * 3, seed: 1))
        let first = dir.appendingPathComponent("a.png"), second = dir.appendingPathComponent("b.png")
        try PNGFile.write(image, to: first)
        try PNGFile.write(image, to: second)
        #expect(try PNGFile.readRGB(first) == image)
        #expect(try Data(contentsOf: first) == Data(contentsOf: second))
        try PNGFile.write(image, to: second, compression: .fast)
        #expect(try PNGFile.readRGB(second) == image)
    }

    @Test func greyRoundTripIsExact() throws {
        let mask = GrayImage(height: 9, width: 4, bytes: Self.randomBytes(36, seed: 2))
        let file = dir.appendingPathComponent("mask.png")
        try PNGFile.write(mask, to: file)
        #expect(try PNGFile.readGray(file) == mask)
        // A grey file read as RGB replicates the grey value.
        #expect(try PNGFile.readRGB(file).bytes == mask.bytes.flatMap { [$0, $0, $0] })
    }

    /// Every colour type and bit depth, against what Pillow's `convert("RGB")` / `convert("L")` give.
    @Test(arguments: ["grey8", "grey_alpha8", "rgb8", "rgba8", "palette", "palette_transparent", "bilevel",
                      "grey16", "rgb16", "rgba16", "grey_alpha16"])
    func readsLikePillow(name: String) throws {
        let expected = try Fixtures.open("image_files.safetensors")
        let file = Fixtures.url("image_files/\(name).png")
        let rgb = try PNGFile.readRGB(file), grey = try PNGFile.readGray(file)
        #expect(rgb.bytes == (try expected.tensor("\(name).rgb", shape: [rgb.height, rgb.width, 3])).scalars.map { UInt8($0) })
        #expect(grey.bytes == (try expected.tensor("\(name).l", shape: [grey.height, grey.width])).scalars.map { UInt8($0) })
    }

    @Test func missingFileIsUnreadable() {
        let file = dir.appendingPathComponent("rgb/000.png")
        #expect(throws: ImageFileError.unreadable(file: file.path, reason: "no such file")) { try PNGFile.readRGB(file) }
    }

    @Test func corruptFilesGiveTypedErrors() throws {
        let garbage = dir.appendingPathComponent("garbage.png")
        try Data(Self.randomBytes(300, seed: 3)).write(to: garbage)
        let truncated = dir.appendingPathComponent("truncated.png")
        let valid = dir.appendingPathComponent("valid.png")
        try PNGFile.write(RGBImage(height: 40, width: 40, bytes: Self.randomBytes(4800, seed: 4)), to: valid)
        try Data(contentsOf: valid).prefix(2000).write(to: truncated)
        for file in [garbage, truncated] {
            let error = #expect(throws: ImageFileError.self) { try PNGFile.readRGB(file) }
            guard case let .corrupt(name, reason)? = error else {
                Issue.record("expected .corrupt, got \(String(describing: error))")
                continue
            }
            #expect(name == file.path && !reason.isEmpty)
            #expect(error!.description.hasPrefix(file.path + ": corrupt"))
        }
    }

    @Test func unwritablePathGivesTypedError() {
        let file = dir.appendingPathComponent("no/such/dir/x.png")
        let error = #expect(throws: ImageFileError.self) { try PNGFile.write(GrayImage(height: 1, width: 1, repeating: 0), to: file) }
        guard case .unwritable(file.path, _)? = error else {
            Issue.record("expected .unwritable naming \(file.path), got \(String(describing: error))")
            return
        }
    }
}
