import CFMData
import CFMDetector
import CFMGeometry
import CFMTensor
import Foundation
import Testing

/// Defect regions and overlay panels of synthetic defective parts scored end to end by the
/// non-learned baseline (a real map from real preprocessing, no trained model needed), on frames
/// cropped to 400 × 320 so the pad and resize are not trivial. Set CFM_PICTURE_DIR to a directory
/// to keep the panels for a person to look at.
@Suite struct OverlayPanelExamplesTests {
    static let size = 400, rows = 40..<360

    /// A synthetic sample cut to `rows`: RGB, cloud [320, 400, 3] in metres, defect mask.
    func sample(_ partClass: SyntheticClass, _ type: SyntheticDefectType, seed: UInt64) -> (RGBImage, Tensor, GrayImage) {
        let s = SyntheticDataset.render(partClass, type, seed: seed, size: Self.size)
        let (n, r) = (Self.size, Self.rows)
        return (RGBImage(height: r.count, width: n, bytes: Array(s.rgb.bytes[(r.lowerBound * n * 3)..<(r.upperBound * n * 3)])),
                Tensor(shape: [r.count, n, 3], scalars: Array(s.cloud.scalars[(r.lowerBound * n * 3)..<(r.upperBound * n * 3)])),
                GrayImage(height: r.count, width: n, bytes: Array(s.mask.bytes[(r.lowerBound * n)..<(r.upperBound * n)])))
    }

    @Test(arguments: [SyntheticClass.cookie, .box])
    func rejectedDefectsAreBoxedWhereTheGroundTruthIs(partClass: SyntheticClass) throws {
        let preprocessor = Preprocessor()
        func frame(_ s: (RGBImage, Tensor, GrayImage)) throws -> PreprocessedFrame { try preprocessor(rgb: s.0, cloud: s.1) }
        let baseline = try NominalBaseline.fit((0..<3).map { try frame(sample(partClass, .good, seed: 100 + $0)) })
        // A threshold a little above the highest score of nominal parts the baseline has not seen.
        let threshold = try (200..<203).map { try baseline.detect(frame(sample(partClass, .good, seed: $0))).score }.max()! * 1.05
        let keep = ProcessInfo.processInfo.environment["CFM_PICTURE_DIR"].map { URL(fileURLWithPath: $0) }

        var rejected = 0
        for (type, seed) in [(SyntheticDefectType.color, UInt64(1)), (.color, 2), (.shape, 3), (.combined, 4), (.good, 5)] {
            let (rgb, cloud, mask) = sample(partClass, type, seed: seed)
            let preprocessed = try preprocessor(rgb: rgb, cloud: cloud)
            let detection = try baseline.detect(preprocessed)
            let grid = SensorMapGrid(sensorHeight: rgb.height, sensorWidth: rgb.width, mapSize: preprocessor.options.size)
            let found = DefectRegions(map: detection.anomalyMap, score: detection.score, threshold: threshold, grid: grid)
            #expect((found.total > 0) == (detection.score > threshold))
            if detection.score > threshold && type != .good {
                rejected += 1
                // The largest region overlaps the ground truth.
                let box = found.regions[0]
                let hits = (box.yMin..<box.yMax).reduce(0) { sum, y in
                    sum + (box.xMin..<box.xMax).filter { mask.bytes[y * rgb.width + $0] != 0 }.count
                }
                #expect(hits > 0, "\(partClass)/\(type) \(seed): box \(box.box) misses the defect")
            }
            let heights = HeightField(cloud: cloud, unit: .m, plane: try #require(preprocessed.background?.plane))
            let panel = OverlayPanel.render(rgb: rgb, heights: heights, map: detection.anomalyMap, score: detection.score,
                                            threshold: threshold, truth: mask, title: "\(partClass)/\(type)/\(seed)")
            #expect(panel.width > 3 * rgb.width && panel.height > rgb.height)
            if let keep {
                try PNGFile.write(panel, to: keep.appendingPathComponent("\(partClass)-\(type)-\(seed).png"))
            }
        }
        #expect(rejected >= 2, "the baseline rejects at least two of the four defective \(partClass) parts")
    }
}
