import CFMData
import CFMTensor
import CFMTestSupport
import Foundation
import Testing

/// The official ground-truth protocol against Pillow 9.4 (`tools/reference/make_gt_resize_fixtures.py`):
/// `Tests/Fixtures/gt_resize.safetensors` (Pillow NEAREST's source indices per axis) and
/// `Tests/Fixtures/gt_resize/<w>x<h>_<out>.png` (official masks of `pattern`).
@Suite struct GroundTruthResamplingTests {
    /// `gt_pattern` of the fixture script: XOR of a column and a row bit hash (0 / 255), columns
    /// x % 37 == 5 set to 127 and rows y % 41 == 9 set to 128.
    static func pattern(height: Int, width: Int) -> GrayImage {
        var bytes = [UInt8]()
        for y in 0..<height {
            for x in 0..<width {
                let bit = ((((x * 2_654_435_761) % (1 << 32)) >> 13) ^ (((y * 40503) % (1 << 16)) >> 5)) & 1
                bytes.append(y % 41 == 9 ? 128 : x % 37 == 5 ? 127 : bit == 1 ? 255 : 0)
            }
        }
        return GrayImage(height: height, width: width, bytes: bytes)
    }

    @Test func pillowNearestIndicesMatchPillow() throws {
        let fixtures = try Fixtures.open("gt_resize.safetensors")
        let axes = fixtures.entries.keys.sorted().filter { $0.hasPrefix("pillow_nearest.") }
        #expect(axes.count >= 10)
        for name in axes {
            let sizes = name.dropFirst("pillow_nearest.".count).split(separator: "_").map { Int($0)! }
            let expected = try fixtures.tensor(name).scalars.map { Int($0) }
            #expect(pillowNearestSourceIndices(inSize: sizes[0], outSize: sizes[1]) == expected, "\(name)")
        }
    }

    @Test(arguments: [(800, 800, 224), (811, 601, 224), (601, 811, 224), (37, 53, 224), (5, 3, 7)])
    func officialMaskMatchesPillow(width: Int, height: Int, size: Int) throws {
        let expected = try PNGFile.readGray(Fixtures.url("gt_resize/\(width)x\(height)_\(size).png"))
        let mask = Self.pattern(height: height, width: width).evaluationMask(size: size)
        #expect(mask.height == size && mask.width == size)
        let differing = zip(mask.bytes, expected.bytes).filter { $0 != $1 }.count
        #expect(differing == 0, "\(differing) of \(size * size) pixels differ")
    }

    @Test func officialPadsByEdgeReplicationAndSamplesPixelCentres() {
        // 1 × 2 (wide) → a 2 × 2 square whose second row repeats the first, then 2 → 4 samples
        // source 0, 0, 1, 1 (centres 0.25, 0.75, 1.25, 1.75).
        let mask = GrayImage(height: 1, width: 2, bytes: [255, 0])
        #expect(mask.evaluationMask(size: 4).bytes == [UInt8](repeating: 0, count: 16).enumerated().map { $0.offset % 4 < 2 ? 255 : 0 })
        // The point-cloud variant pads with zeros instead: the padding row stays anomaly-free.
        #expect(mask.evaluationMask(size: 2, resampling: .pointCloud).bytes == [255, 0, 0, 0])
        // 6 → 3 samples columns 1, 3, 5 (pixel centres), PyTorch's nearest 0, 2, 4.
        let stripes = GrayImage(height: 6, width: 6, bytes: (0..<36).map { $0 % 2 == 1 ? 255 : 0 })
        #expect(stripes.evaluationMask(size: 3).bytes == [UInt8](repeating: 255, count: 9))
        #expect(stripes.evaluationMask(size: 3, resampling: .pointCloud).bytes == [UInt8](repeating: 0, count: 9))
    }

    @Test func officialBinarisesAtHalfScale() {
        let mask = GrayImage(height: 1, width: 4, bytes: [1, 127, 128, 255])
        // Square 4 × 4 (edge rows), identity resize: 1 and 127 are anomaly-free, 128 and 255 anomalous.
        #expect(Array(mask.evaluationMask(size: 4).bytes.prefix(4)) == [0, 0, 255, 255])
        #expect(Array(mask.evaluationMask(size: 4, resampling: .pointCloud).bytes[4..<8]) == [255, 255, 255, 255])
    }
}
