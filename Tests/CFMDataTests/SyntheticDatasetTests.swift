import CFMData
import CFMTensor
import CFMTestSupport
import Foundation
import Testing

/// The synthetic dataset generator at small sizes: determinism, the MVTec layout, scene geometry
/// and ground truth that marks exactly where the defects change the data.
@Suite struct SyntheticDatasetTests {
    /// Pixel indices where two byte/float arrays of interleaved pixels differ.
    static func changedPixels<T: Equatable>(_ a: [T], _ b: [T], channels: Int) -> Set<Int> {
        Set((0..<(a.count / channels)).filter { p in (0..<channels).contains { a[p * channels + $0] != b[p * channels + $0] } })
    }

    /// The mask's pixels grown by one pixel (8-neighbourhood).
    static func dilated(_ mask: GrayImage) -> Set<Int> {
        var result = Set<Int>()
        for y in 0..<mask.height {
            for x in 0..<mask.width where mask.bytes[y * mask.width + x] != 0 {
                for dy in -1...1 {
                    for dx in -1...1 where (0..<mask.height).contains(y + dy) && (0..<mask.width).contains(x + dx) {
                        result.insert((y + dy) * mask.width + x + dx)
                    }
                }
            }
        }
        return result
    }

    static func pixels(_ mask: GrayImage) -> Set<Int> { Set(mask.bytes.indices.filter { mask.bytes[$0] != 0 }) }

    @Test func sameSeedGivesSameBytesAndTheReaderReadsIt() throws {
        let a = try makeTemporaryDirectory(), b = try makeTemporaryDirectory()
        defer { for dir in [a, b] { try? FileManager.default.removeItem(at: dir) } }
        let options = SyntheticDataset.Options(size: 40, seed: 7, classes: [.gland], trainCount: 2, validationCount: 1, testCountPerType: 1)
        #expect(try SyntheticDataset.generate(options, to: a) == 8)
        try SyntheticDataset.generate(options, to: b)
        let files = try FileManager.default.subpathsOfDirectory(atPath: a.path).sorted()
        #expect(files == (try FileManager.default.subpathsOfDirectory(atPath: b.path)).sorted())
        #expect(files.filter { $0.hasSuffix(".png") || $0.hasSuffix(".tiff") }.count == 8 * 2 + 5)
        for file in files {  // directories read as nil on both sides
            #expect((try? Data(contentsOf: a.appendingPathComponent(file))) == (try? Data(contentsOf: b.appendingPathComponent(file))), "\(file)")
        }
        let gland = try MVTec3DDataset(directory: a).class("gland")
        #expect(try MVTec3DDataset(directory: a).classNames() == ["gland"])
        #expect(try gland.defectTypes(.test) == ["color", "combined", "crossmodal", "good", "shape"])
        #expect(try gland.samples(.train).map(\.id) == ["000", "001"])
        for sample in try gland.samples(.test) {
            let loaded = try sample.load()
            #expect(loaded.cloud.shape == [40, 40, 3])
            #expect(loaded.mask.bytes.contains(255) == !sample.isNominal, "\(sample.key)")
        }
        let other = SyntheticDataset.render(.gland, .good, seed: 8, size: 40)
        #expect(other.rgb != SyntheticDataset.render(.gland, .good, seed: 7, size: 40).rgb)
    }

    /// Every pixel's point lies on its pixel's ray, the table pixels on the table plane, and the
    /// object stands well clear of both the table and the image border.
    @Test(arguments: SyntheticClass.allCases)
    func sceneGeometry(partClass: SyntheticClass) {
        let size = 80
        for seed: UInt64 in 0..<3 {
            let sample = SyntheticDataset.render(partClass, .good, seed: seed, size: size)
            let f = sample.focalLength, c = Float(size) / 2
            var worstRay: Float = 0, tableWorst: Float = 0, objectHeights = [Float](), missing = 0
            for y in 0..<size {
                for x in 0..<size {
                    let i = y * size + x
                    let p = SIMD3(sample.cloud.scalars[3 * i], sample.cloud.scalars[3 * i + 1], sample.cloud.scalars[3 * i + 2])
                    guard p != .zero else { missing += 1; continue }
                    worstRay = max(worstRay, abs(p.x / p.z * f - (Float(x) + 0.5 - c)), abs(p.y / p.z * f - (Float(y) + 0.5 - c)))
                    let height = (sample.tableNormal * p).sum() + sample.tableOffset
                    if sample.objectMask.bytes[i] == 0 { tableWorst = max(tableWorst, abs(height)) } else { objectHeights.append(height) }
                }
            }
            #expect(worstRay < 1e-3, "\(partClass) seed \(seed): a point is \(worstRay) px off its ray")
            #expect(tableWorst < 0.002, "\(partClass) seed \(seed): a table point is \(tableWorst) m off the plane")
            #expect(objectHeights.min()! > 0.006, "\(partClass) seed \(seed): an object point is \(objectHeights.min()!) m high")
            #expect(missing > 0 && missing < size * size / 100, "\(partClass) seed \(seed): \(missing) missing points")
            let coverage = Float(Self.pixels(sample.objectMask).count) / Float(size * size)
            #expect((0.25...0.5).contains(coverage), "\(partClass) seed \(seed): object covers \(coverage)")
            let border = size / 16  // 25 pixels at the default size
            let touching = Self.pixels(sample.objectMask).filter { i in
                let (y, x) = (i / size, i % size)
                return min(x, y, size - 1 - x, size - 1 - y) < border
            }
            #expect(touching.isEmpty, "\(partClass) seed \(seed): object within \(border) px of the border")
            #expect(abs(sample.tableNormal.z) < cos(Float.pi / 180) && abs(sample.tableNormal.z) > cos(Float.pi / 36))
        }
    }

    /// A defective sample differs from the `good` sample of the same seed only inside its mask
    /// (grown by one pixel for shading), in the modalities its defect type says, and its mask lies on the part.
    @Test(arguments: SyntheticClass.allCases)
    func groundTruthMarksTheChanges(partClass: SyntheticClass) {
        let size = 64, seed: UInt64 = 3
        let good = SyntheticDataset.render(partClass, .good, seed: seed, size: size)
        #expect(!good.mask.bytes.contains(255))
        for type in SyntheticDefectType.allCases.dropFirst() {
            let sample = SyntheticDataset.render(partClass, type, seed: seed, size: size)
            let mask = Self.pixels(sample.mask), grown = Self.dilated(sample.mask)
            #expect(!mask.isEmpty && mask.isSubset(of: Self.pixels(sample.objectMask)), "\(partClass)/\(type)")
            #expect(Set(sample.mask.bytes).isSubset(of: [0, 255]))
            let rgbChanges = Self.changedPixels(sample.rgb.bytes, good.rgb.bytes, channels: 3)
            let xyzChanges = Self.changedPixels(sample.cloud.scalars, good.cloud.scalars, channels: 3)
            #expect(rgbChanges.isSubset(of: grown) && xyzChanges.isSubset(of: grown),
                    "\(partClass)/\(type): \(rgbChanges.subtracting(grown).count) RGB and \(xyzChanges.subtracting(grown).count) XYZ changes outside the mask")
            switch type {
            case .color:
                #expect(xyzChanges.isEmpty, "\(partClass)/color changed the geometry")
                #expect(rgbChanges.count * 2 >= mask.count, "\(partClass)/color: \(rgbChanges.count) of \(mask.count) pixels changed")
            case .shape, .combined:
                #expect(xyzChanges.count * 2 >= mask.count, "\(partClass)/\(type): \(xyzChanges.count) of \(mask.count) points moved")
            case .crossmodal:
                #expect(!rgbChanges.union(xyzChanges).isEmpty, "\(partClass)/crossmodal changed nothing")
            case .good:
                break
            }
        }
    }
}
