@testable import CFMData
import CFMTensor
import CFMTestSupport
import Foundation
import Testing

/// AUROC, P-AUROC and AUPRO on hand-made cases with known values, and against scikit-learn and
/// the MVTec / CFM evaluation code (`tools/reference/make_metric_fixtures.py`).
@Suite struct MetricsTests {
    // MARK: score order

    @Test func radixOrderMatchesComparisonSort() {
        var random = SeededRandom(seed: 7)
        var scores = (0..<5000).map { _ in random.normal() * 3 }
        scores += [0, -0.0, .infinity, -.infinity, .greatestFiniteMagnitude, -.leastNonzeroMagnitude, .leastNonzeroMagnitude, 1, 1, -1]
        let sorted = ScoreOrder.sortedDescending(scores, tags: (0..<scores.count).map(UInt32.init))
        let values = sorted.map { ScoreOrder.value(UInt32($0 >> 32)) }
        #expect(values == scores.sorted(by: >).map { $0 == 0 ? 0 : $0 })
        // Stable: tied scores keep their input order; the tags travel with their scores.
        for (a, b) in zip(sorted, sorted.dropFirst()) where a >> 32 == b >> 32 { #expect(a & 0xFFFF_FFFF < b & 0xFFFF_FFFF) }
        for item in sorted { #expect(ScoreOrder.value(UInt32(item >> 32)) == scores[Int(item & 0xFFFF_FFFF)] || scores[Int(item & 0xFFFF_FFFF)] == 0) }
        #expect(ScoreOrder.key(0) == ScoreOrder.key(-0.0))
    }

    // MARK: AUROC

    @Test func aurocOfPerfectInvertedAndConstantScorers() {
        let labels = [false, false, true, false, true, true]
        let perfect: [Float] = [0.1, 0.2, 0.9, 0.3, 0.8, 0.95]
        #expect(ROC.area(scores: perfect, labels: labels) == 1)
        #expect(ROC.area(scores: perfect.map { -$0 }, labels: labels) == 0)
        #expect(ROC.area(scores: [Float](repeating: 3, count: 6), labels: labels) == 0.5)
        #expect(ROC.area(scores: [1, 2], labels: [true, true]) == nil)
        #expect(ROC.area(scores: [], labels: []) == nil)
    }

    @Test func aurocCountsTiesHalf() {
        // Positives {0.5, 0.5}, negatives {0.5, 0.2}: pairs 0.5 (tie) + 1 per positive → 3 / 4.
        #expect(ROC.area(scores: [0.5, 0.5, 0.5, 0.2], labels: [true, false, true, false]) == 0.75)
        // One positive tied with one of three negatives, above the others: (1 + 1 + 0.5) / 3.
        #expect(ROC.area(scores: [2, 2, 1, 0], labels: [true, false, false, false]) == 2.5 / 3)
    }

    @Test func aurocOfARandomScorerIsAboutOneHalf() {
        var random = SeededRandom(seed: 3)
        let scores = (0..<20000).map { _ in random.uniform() }
        let labels = (0..<20000).map { _ in random.uniform() < 0.3 }
        let auc = ROC.area(scores: scores, labels: labels)!
        #expect(abs(auc - 0.5) < 0.015)
    }

    // MARK: regions

    @Test func regionsAreEightConnected() {
        let mask: [[Int]] = [
            [1, 0, 0, 0, 1],
            [0, 1, 0, 0, 1],
            [0, 0, 1, 0, 0],
            [0, 0, 0, 0, 0],
            [1, 1, 0, 0, 1],
        ]
        let truth = GroundTruthRegions(mask: mask.flatMap { $0.map { $0 != 0 } }, height: 5, width: 5)
        #expect(truth.count == 4)
        #expect(truth.sizes == [3, 2, 2, 1])
        #expect(truth.labels[0] == 1 && truth.labels[12] == 1 && truth.labels[4] == 2 && truth.labels[24] == 4)
        #expect(truth.anomalousPixels == 8 && !truth.isNominal)
        #expect(GroundTruthRegions(mask: [Bool](repeating: false, count: 6), height: 2, width: 3).isNominal)
    }

    @Test func masksResizeLikeThePointCloud() {
        // 2 × 4 → padded to 4 × 4 with one zero row above and below, then nearest to 8 × 8.
        let mask = GrayImage(height: 2, width: 4, bytes: [0, 255, 0, 0,
                                                          0, 0, 0, 7])
        let resized = mask.resizedMask(to: 8)
        #expect(resized.height == 8 && resized.width == 8)
        let rows = (0..<8).map { Array(resized.bytes[($0 * 8)..<($0 * 8 + 8)]) }
        let zero = [UInt8](repeating: 0, count: 8)
        #expect(rows[0] == zero && rows[1] == zero && rows[6] == zero && rows[7] == zero)
        #expect(rows[2] == [0, 0, 255, 255, 0, 0, 0, 0] && rows[3] == rows[2])
        #expect(rows[4] == [0, 0, 0, 0, 0, 0, 255, 255] && rows[5] == rows[4])
        // Downscaling samples ⌊dst · in / out⌋.
        let big = GrayImage(height: 6, width: 6, bytes: (0..<36).map { $0 % 6 == 3 ? 255 : 0 })
        #expect(big.resizedMask(to: 3).bytes == [0, 0, 0, 0, 0, 0, 0, 0, 0])  // columns 0, 2, 4
        #expect(big.resizedMask(to: 2).bytes == [0, 255, 0, 255])  // columns 0, 3
    }

    // MARK: AUPRO

    /// One 4 × 4 image whose ground truth is the 2 × 2 block at rows 1–2, columns 1–2.
    static let square: GroundTruthRegions = GroundTruthRegions(
        mask: (0..<16).map { [5, 6, 9, 10].contains($0) }, height: 4, width: 4)

    @Test func perfectAndInvertedMaps() throws {
        let perfect: [Float] = (0..<16).map { [5, 6, 9, 10].contains($0) ? 1 : 0 }
        let curve = try PROCurve(maps: [perfect], truths: [Self.square])
        #expect(curve.fpr == [0, 0, 1] && curve.pro == [0, 1, 1])
        for limit in PROCurve.limits { #expect(curve.normalizedArea(upTo: limit) == 1) }
        let inverted = try PROCurve(maps: [perfect.map { 1 - $0 }], truths: [Self.square])
        #expect(inverted.fpr == [0, 1, 1] && inverted.pro == [0, 0, 1])
        for limit in PROCurve.limits { #expect(inverted.normalizedArea(upTo: limit) == 0) }
    }

    @Test func halfCoveredRegion() throws {
        // Two of the four region pixels score 1, everything else 0: the curve is
        // (0, 0) → (0, ½) → (1, 1); up to 0.3 the area is 0.3 · ½ + 0.3² / 4 = 0.1725.
        let map: [Float] = (0..<16).map { [5, 6].contains($0) ? 1 : 0 }
        let curve = try PROCurve(maps: [map], truths: [Self.square])
        #expect(curve.fpr == [0, 0, 1] && curve.pro == [0, 0.5, 1])
        #expect(abs(curve.normalizedArea(upTo: 0.3) - 0.575) < 1e-12)
        #expect(abs(curve.normalizedArea(upTo: 0.01) - 0.5025) < 1e-12)
        #expect(curve.regions == 1 && curve.nominalPixels == 12)
    }

    @Test func overlapIsAveragedPerRegionNotPerPixel() throws {
        // A 1-pixel region fully found and a 9-pixel region missed at the top threshold: PRO ½
        // (a per-pixel average would say 0.1). A nominal second image adds anomaly-free pixels.
        var mask = [Bool](repeating: false, count: 36)
        mask[0] = true
        for y in 3..<6 { for x in 3..<6 { mask[y * 6 + x] = true } }
        let truth = GroundTruthRegions(mask: mask, height: 6, width: 6)
        let nominal = GroundTruthRegions(mask: [Bool](repeating: false, count: 36), height: 6, width: 6)
        var map = [Float](repeating: 0, count: 36)
        map[0] = 5
        let curve = try PROCurve(maps: [map, [Float](repeating: 0, count: 36)], truths: [truth, nominal])
        #expect(curve.regions == 2 && curve.nominalPixels == 26 + 36)
        #expect(curve.fpr == [0, 0, 1] && curve.pro == [0, 0.5, 1])
    }

    @Test func tiesAcrossImagesShareOneThreshold() throws {
        // The region pixel and a nominal pixel of another image tie: one point, no vertical step.
        let truth = GroundTruthRegions(mask: [true, false, false, false], height: 2, width: 2)
        let nominal = GroundTruthRegions(mask: [false, false, false, false], height: 2, width: 2)
        let curve = try PROCurve(maps: [[2, 0, 0, 0], [0, 2, 0, 0]], truths: [truth, nominal])
        #expect(curve.fpr == [0, 1.0 / 7, 1] && curve.pro == [0, 1, 1])
        // Area up to 0.1 (on the segment (0,0)–(1/7,1)): 0.1 · 0.7 / 2 / 0.1 = 0.35.
        #expect(abs(curve.normalizedArea(upTo: 0.1) - 0.35) < 1e-12)
    }

    @Test func randomMapsGiveTheDiagonal() throws {
        var random = SeededRandom(seed: 11)
        var maps = [[Float]](), truths = [GroundTruthRegions]()
        for i in 0..<6 {
            maps.append((0..<(64 * 64)).map { _ in random.uniform() })
            truths.append(GroundTruthRegions(mask: (0..<(64 * 64)).map { p in i % 2 == 0 && (p / 64) % 16 < 8 && (p % 64) < 20 },
                                             height: 64, width: 64))
        }
        let curve = try PROCurve(maps: maps, truths: truths)
        // PRO ≈ FPR, so AUPRO@L ≈ L / 2.
        for limit in [0.3, 0.1] { #expect(abs(curve.normalizedArea(upTo: limit) - limit / 2) < 0.02) }
        #expect(abs(ROC.pixelArea(maps: maps, truths: truths)! - 0.5) < 0.02)
    }

    @Test func undefinedCurves() {
        let nominal = GroundTruthRegions(mask: [false, false], height: 1, width: 2)
        #expect(throws: MetricError.noAnomalousRegions) { try PROCurve(maps: [[1, 2]], truths: [nominal]) }
        let full = GroundTruthRegions(mask: [true, true], height: 1, width: 2)
        #expect(throws: MetricError.noNominalPixels) { try PROCurve(maps: [[1, 2]], truths: [full]) }
    }

    @Test func truncatedCurveKeepsTheAreas() throws {
        let (maps, truths) = try Self.fixturePixels("continuous")
        let full = try PROCurve(maps: maps, truths: truths)
        let short = try PROCurve(maps: maps, truths: truths, maxFPR: 0.3)
        #expect(short.fpr.count < full.fpr.count / 2)
        for limit in PROCurve.limits { #expect(short.normalizedArea(upTo: limit) == full.normalizedArea(upTo: limit)) }
    }

    // MARK: against the Python references

    static func fixturePixels(_ name: String) throws -> ([[Float]], [GroundTruthRegions]) {
        let file = try Fixtures.open("metrics.safetensors")
        let maps = try file.tensor("pixel.\(name).maps"), masks = try file.tensor("pixel.\(name).masks")
        let (n, h, w) = (maps.shape[0], maps.shape[1], maps.shape[2])
        return ((0..<n).map { Array(maps.scalars[($0 * h * w)..<(($0 + 1) * h * w)]) },
                (0..<n).map { i in GroundTruthRegions(mask: masks.scalars[(i * h * w)..<((i + 1) * h * w)].map { $0 != 0 },
                                                      height: h, width: w) })
    }

    static func expected(_ key: String) throws -> Double {
        let file = try Fixtures.open("metrics.safetensors")
        return try #require(file.metadata[key].flatMap(Double.init), "fixture metadata lacks \(key)")
    }

    @Test(arguments: ["continuous", "ties", "separable", "small"])
    func imageAUROCMatchesScikitLearn(_ name: String) throws {
        let file = try Fixtures.open("metrics.safetensors")
        let scores = try file.tensor("image.\(name).scores").scalars
        let labels = try file.tensor("image.\(name).labels").scalars.map { $0 != 0 }
        let auc = try #require(ROC.area(scores: scores, labels: labels))
        #expect(abs(auc - (try Self.expected("image.\(name).auroc"))) < 1e-12)
    }

    @Test(arguments: ["continuous", "ties"])
    func pixelMetricsMatchTheReferences(_ name: String) throws {
        let (maps, truths) = try Self.fixturePixels(name)
        #expect(truths.reduce(0) { $0 + $1.count } == Int(try Self.expected("pixel.\(name).regions")))
        let auc = try #require(ROC.pixelArea(maps: maps, truths: truths))
        #expect(abs(auc - (try Self.expected("pixel.\(name).auroc"))) < 1e-12)
        let exact = try PROCurve(maps: maps, truths: truths)
        let sampled = try PROCurve(maps: maps, truths: truths, sampling: .thresholds(99))
        #expect(sampled.fpr.count == 100)
        for limit in PROCurve.limits {
            #expect(abs(exact.normalizedArea(upTo: limit) - (try Self.expected("pixel.\(name).aupro.exact.\(limit)"))) < 1e-9)
            #expect(abs(sampled.normalizedArea(upTo: limit) - (try Self.expected("pixel.\(name).aupro.sampled99.\(limit)"))) < 1e-9)
        }
    }

    // MARK: report

    @Test func reportBreaksDownByDefect() throws {
        // Scores: good 0.1, 0.2; crack 0.9 (found); hole 0.15 (between the good ones).
        let region = GroundTruthRegions(mask: (0..<16).map { [5, 6, 9, 10].contains($0) }, height: 4, width: 4)
        let clean = GroundTruthRegions(mask: [Bool](repeating: false, count: 16), height: 4, width: 4)
        let hit: [Float] = (0..<16).map { [5, 6, 9, 10].contains($0) ? 1 : 0 }
        let flat = [Float](repeating: 0.5, count: 16)
        let images = [
            EvaluatedImage(defect: "good", id: "000", score: 0.1, pixelMap: flat, regionMap: flat, truth: clean),
            EvaluatedImage(defect: "good", id: "001", score: 0.2, pixelMap: flat, regionMap: flat, truth: clean),
            EvaluatedImage(defect: "crack", id: "000", score: 0.9, pixelMap: hit, regionMap: hit, truth: region),
            EvaluatedImage(defect: "hole", id: "000", score: 0.15, pixelMap: flat, regionMap: flat, truth: region),
        ]
        let report = EvaluationReport(images)
        #expect(report.overall.samples == 4 && report.overall.nominal == 2 && report.overall.anomalous == 2)
        #expect(report.overall.imageAUROC == 0.75)
        #expect(report.byDefect.keys.sorted() == ["crack", "hole"])
        #expect(report.byDefect["crack"]!.imageAUROC == 1 && report.byDefect["hole"]!.imageAUROC == 0.5)
        #expect(report.byDefect["crack"]!.auPRO == [1, 1, 1, 1])
        #expect(report.byDefect["crack"]!.pixelAUROC == 1)
        // A flat map ties every pixel: P-AUROC ½, the PRO curve is the diagonal, AUPRO@L = L / 2.
        #expect(report.byDefect["hole"]!.pixelAUROC == 0.5)
        for (limit, area) in zip(PROCurve.limits, report.byDefect["hole"]!.auPRO) { #expect(abs(area! - limit / 2) < 1e-12) }
        let json = report.overall.jsonObject
        #expect(Set(((json["aupro"] as? [String: Any]) ?? [:]).keys) == ["30%", "10%", "5%", "1%"])
        // Only nominal images: no I-AUROC, no AUPRO.
        let onlyGood = EvaluationReport(Array(images.prefix(2)))
        #expect(onlyGood.overall.imageAUROC == nil && onlyGood.overall.auPRO == [nil, nil, nil, nil])
        #expect(onlyGood.overall.jsonObject["i_auroc"] is NSNull)
    }
}
