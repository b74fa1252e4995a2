import CFMData
import CFMDetector
import CFMGeometry
import CFMTensor
import CFMTestSupport
import Foundation
import Testing

/// Defect regions and overlay panels of synthetic parts through the real preprocessing (plane,
/// padding, resizing) on frames cropped to 400 × 320, so the pad and resize are not trivial. The
/// map stands in for a trained model's: built on the 224 grid from the ground truth plus noise on
/// the measured pixels and smoothed as the method smooths. The regions found must land on the
/// ground truth in sensor pixels; the panels and an evaluation page over them are written. Set
/// CFM_PICTURE_DIR to a directory to keep them (`<class>/report.html`) for a person to look at.
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

    /// The stand-in map of a preprocessed frame and its score: 0.1…0.3 on measured pixels, +1.5 on
    /// the defect (the mask brought onto the grid as the cloud is), then the method's smoothing.
    func stainMap(_ frame: PreprocessedFrame, mask: GrayImage, seed: UInt64) -> (map: Tensor, score: Float) {
        let s = frame.input.xyz.shape[0]
        let truth = mask.resizedMask(to: s)
        var random = SeededRandom(seed: seed)
        var raw = Tensor(shape: [s, s])
        for p in 0..<(s * s) where frame.input.xyz.scalars[(3 * p)..<(3 * p + 3)].contains(where: { $0 != 0 }) {
            raw.scalars[p] = random.uniform(0.1, 0.3) + (truth.bytes[p] != 0 ? 1.5 : 0)
        }
        let map = AnomalyScoring.smooth(raw, size: s)
        return (map, AnomalyScoring.imageScore(map))
    }

    @Test(arguments: [SyntheticClass.cookie, .box])
    func regionsLandOnTheGroundTruthInSensorPixels(partClass: SyntheticClass) throws {
        let preprocessor = Preprocessor()
        let kept = ProcessInfo.processInfo.environment["CFM_PICTURE_DIR"].map { URL(fileURLWithPath: $0) }
        let directory = try (kept ?? makeTemporaryDirectory()).appendingPathComponent(partClass.rawValue)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { if kept == nil { try? FileManager.default.removeItem(at: directory.deletingLastPathComponent()) } }
        var evaluated = [EvaluatedImage](), listed = [EvaluationPage.Sample]()
        let goodScores = try (UInt64(200)..<202).map { seed -> Float in
            let (rgb, cloud, mask) = sample(partClass, .good, seed: seed)
            return stainMap(try preprocessor(rgb: rgb, cloud: cloud), mask: mask, seed: seed).score
        }
        let threshold = goodScores.max()! * 1.1
        for (type, seed) in [(SyntheticDefectType.color, UInt64(1)), (.shape, 3), (.combined, 4), (.crossmodal, 6),
                             (.good, 5), (.good, 7)] {
            let (rgb, cloud, mask) = sample(partClass, type, seed: seed)
            let frame = try preprocessor(rgb: rgb, cloud: cloud)
            let (map, score) = stainMap(frame, mask: mask, seed: seed)
            let grid = SensorMapGrid(sensorHeight: rgb.height, sensorWidth: rgb.width, mapSize: preprocessor.options.size)
            let found = DefectRegions(map: map, score: score, threshold: threshold, grid: grid)
            let defective = mask.bytes.contains { $0 != 0 }
            #expect((score > threshold) == defective, "\(partClass)/\(type): score \(score), threshold \(threshold)")
            #expect((found.total > 0) == (score > threshold))
            for region in found.regions {
                let hits: Int = (region.yMin..<region.yMax).reduce(0) { sum, y in
                    sum + (region.xMin..<region.xMax).filter { mask.bytes[y * rgb.width + $0] != 0 }.count
                }
                #expect(hits > 0, "\(partClass)/\(type): box \(region.box) misses the defect")
            }
            let heights = HeightField(cloud: cloud, unit: .m, plane: try #require(frame.background?.plane))
            let panel = OverlayPanel.render(rgb: rgb, heights: heights, map: map, score: score, threshold: threshold,
                                            truth: mask, title: "\(partClass)/\(type)/\(seed)")
            #expect(panel.width > 3 * rgb.width && panel.height > rgb.height)
            let file = "\(type)-\(seed).png"
            try PNGFile.write(panel, to: directory.appendingPathComponent(file), compression: .fast)
            evaluated.append(EvaluatedImage(defect: type.rawValue, id: "\(seed)", score: score,
                                            pixelMap: AnomalyScoring.pixelMap(map), regionMap: AnomalyScoring.regionMap(map),
                                            truth: GroundTruthRegions(mask: mask.resizedMask(to: grid.mapSize))))
            listed.append(EvaluationPage.Sample(key: "\(type)/\(seed)", defect: type.rawValue, score: score,
                                                anomalous: defective, image: file))
        }
        let metrics = EvaluationReport(evaluated)
        let page = EvaluationPage(
            title: "\(partClass) (stand-in maps)", details: [("maps", "ground truth + noise, smoothed"), ("frames", "400x320")],
            overall: metrics.overall, byDefect: metrics.byDefect, threshold: threshold, samples: listed,
            pro: try PROCurve(maps: evaluated.map(\.regionMap), truths: evaluated.map(\.truth), maxFPR: 0.3))
        try page.write(to: directory)
        #expect(page.rates?.falseRejectRate == 0 && page.rates?.missRate == 0)
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent(EvaluationPage.rocFile).path))
    }
}
