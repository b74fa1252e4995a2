@testable import CFMData
import CFMTensor
import CFMTestSupport
import Foundation
import Testing

/// The overlay panel, the bitmap font, the plot rasteriser, the threshold rates and the report page.
@Suite struct PicturesTests {
    /// A grey `width` × `height` frame and a 224 map that is 0.2 everywhere and 1 on map pixels
    /// u ∈ 100…109, v ∈ 110…114 (score 4: the square is 4 score units, the rest 0.8).
    func frame(height: Int, width: Int) -> (RGBImage, Tensor) {
        var map = Tensor(shape: [224, 224], scalars: [Float](repeating: 0.2, count: 224 * 224))
        for v in 110...114 { for u in 100...109 { map.scalars[v * 224 + u] = 1 } }
        return (RGBImage(height: height, width: width, colour: RGBColour(128, 128, 128)), map)
    }

    @Test func fontGlyphsAndWidths() {
        let rowsOfA = (0..<7).map { row in String((0..<5).map { BitmapFont.isSet("A", column: $0, row: row) ? "#" : "." }) }
        #expect(rowsOfA == [".###.", "#...#", "#...#", "#...#", "#####", "#...#", "#...#"])
        #expect((0..<7).allSatisfy { row in (0..<5).allSatisfy { !BitmapFont.isSet(" ", column: $0, row: row) } })
        let question = (0..<7).flatMap { row in (0..<5).map { BitmapFont.isSet("?", column: $0, row: row) } }
        #expect((0..<7).flatMap { row in (0..<5).map { BitmapFont.isSet("é", column: $0, row: row) } } == question)
        #expect(BitmapFont.width(of: "PASS", scale: 2) == (4 * 6 - 1) * 2)
    }

    @Test func heatColoursAreMutedUpToTheThresholdAndHotAbove() {
        let base = SIMD3<Float>(repeating: 100)
        #expect(OverlayPanel.heatColour(base: base, ratio: 0) == base)
        let below = OverlayPanel.heatColour(base: base, ratio: 1), above = OverlayPanel.heatColour(base: base, ratio: 1.001)
        #expect(below.z > below.x && below.x < 110, "\(below)")          // bluish, dim
        #expect(above.x > 170 && above.z < 40, "\(above)")                // red
        let top = OverlayPanel.heatColour(base: base, ratio: 5)
        #expect(top.x > 235 && top.y > 235, "\(top)")                      // near white
    }

    @Test func panelOfALandscapeFrameShowsTheHotSquareBoxed() throws {
        let (rgb, map) = frame(height: 600, width: 800)
        let panel = OverlayPanel.render(rgb: rgb, heights: nil, map: map, score: 4, threshold: 3, title: "line1-7")
        let f = 3, margin = 3 * f, gap = 6 * f                                // font scale for 800-pixel tiles
        #expect(panel.width == 3 * 800 + 2 * margin + 2 * gap)
        let header = BitmapFont.glyphHeight * 2 * f + 4 * f + 2 * margin
        let region = try #require(DefectRegions(map: map, score: 4, threshold: 3,
                                                grid: SensorMapGrid(sensorHeight: 600, sensorWidth: 800)).regions.first)
        let heatLeft = margin + 2 * (800 + gap)
        let centre = panel[heatLeft + (region.xMin + region.xMax) / 2, header + (region.yMin + region.yMax) / 2]
        #expect(centre.r > 200 && centre.b < 60, "\(centre)")              // hot inside (4 / 3: orange)
        let far = panel[heatLeft + 50, header + 300]
        #expect(far.b > far.r && far.r < 90, "\(far)")                      // muted outside (0.8 < 3)
        #expect(panel[heatLeft + region.xMin - 1, header + region.yMin + 2] == .white)   // the box's outline
        #expect(panel[margin + 1, margin + 1] == RGBColour(200, 35, 35))  // REJECT badge
        #expect(panel[margin + 400, header + 300] == RGBColour(128, 128, 128))  // the RGB tile untouched
        let pass = OverlayPanel.render(rgb: rgb, heights: nil, map: map, score: 4, threshold: 4)
        #expect(pass[margin + 1, margin + 1] == RGBColour(30, 150, 60))
        // Uncalibrated: grey badge, colours anchored at half the score (the square hot), no box.
        let uncalibrated = OverlayPanel.render(rgb: rgb, heights: nil, map: map, score: 4, threshold: nil)
        #expect(uncalibrated[margin + 1, margin + 1] == RGBColour(110, 110, 110))
        #expect(uncalibrated[heatLeft + (region.xMin + region.xMax) / 2, header + (region.yMin + region.yMax) / 2].r > 200)
        #expect(uncalibrated[heatLeft + region.xMin - 1, header + region.yMin + 2] != .white)
    }

    @Test func largeFramesAreShownShrunkAndHeightsColoured() throws {
        let (rgb, map) = frame(height: 2048, width: 2448)
        var metres = [Float](repeating: .nan, count: 2048 * 2448)
        for p in 0..<(1024 * 2448) { metres[p] = 0.015625 }                  // top half 15.625 mm above the plane
        let panel = OverlayPanel.render(rgb: rgb, heights: HeightField(height: 2048, width: 2448, metres: metres),
                                        map: map, score: 4, threshold: 2)
        if let kept = ProcessInfo.processInfo.environment["CFM_PICTURE_DIR"] {   // for a person to look at
            try PNGFile.write(panel, to: URL(fileURLWithPath: kept).appendingPathComponent("large-2448x2048.png"))
        }
        let f = 3, margin = 3 * f, gap = 6 * f
        #expect(panel.width == 3 * 816 + 2 * margin + 2 * gap)              // 2448 / 3
        let header = BitmapFont.glyphHeight * 2 * f + 4 * f + 2 * margin
        let heightLeft = margin + 816 + gap
        // A flat part: a range of 1 mm at least, in 0.25 mm steps: [15.5, 15.75], the part halfway.
        #expect(OverlayPanel.HeightScale(HeightField(height: 2048, width: 2448, metres: metres)) == .init(bottom: 15.5, top: 15.75))
        #expect(panel[heightLeft + 400, header + 100] == RGBColour(OverlayPanel.heightColour(0.5)))
        #expect(panel[heightLeft + 400, header + 600] == OverlayPanel.missing)
        #expect(OverlayPanel.niceCeiling(10) == 10 && OverlayPanel.niceCeiling(10.2) == 20 && OverlayPanel.niceCeiling(0.21) == 0.25)
    }

    @Test(arguments: [32, 100, 160, 319, 320, 800, 1024, 1025, 2448, 5000])
    func everyLabelFitsUnderItsTile(side: Int) {
        let (h, w) = (side * 3 / 4, side)
        let scale = OverlayPanel.TileScale(height: h, width: w)
        let tileWidth = (w + scale.shrink - 1) / scale.shrink * scale.magnify
        #expect(tileWidth >= min(OverlayPanel.minimumTileSide, w) && tileWidth <= max(OverlayPanel.maximumTileSide, 2 * w))
        let f = OverlayPanel.fontScale(tileWidth: tileWidth)
        let labels = ["height above the plane, mm", "anomaly; green = truth", "RGB \(w)x\(h) px, shown \(scale.magnify):1"]
        for label in labels {
            #expect(BitmapFont.width(of: label, scale: f) <= tileWidth, "\(label) at \(w)x\(h)")
        }
    }

    @Test func smallFramesAreMagnifiedWithTheirRegionsBoxed() throws {
        let (rgb, map) = frame(height: 120, width: 160)
        let panel = OverlayPanel.render(rgb: rgb, heights: nil, map: map, score: 4, threshold: 3,
                                        title: "a-frame-id-far-longer-than-the-room-left-in-the-header-0042")
        let f = 2, margin = 3 * f, gap = 6 * f, magnify = 2                  // 160 px → 320-pixel tiles
        #expect(panel.width == 3 * 320 + 2 * margin + 2 * gap)
        let header = BitmapFont.glyphHeight * 2 * f + 4 * f + 2 * margin
        let region = try #require(DefectRegions(map: map, score: 4, threshold: 3,
                                                grid: SensorMapGrid(sensorHeight: 120, sensorWidth: 160)).regions.first)
        let heatLeft = margin + 2 * (320 + gap)
        let centre = panel[heatLeft + magnify * (region.xMin + region.xMax) / 2, header + magnify * (region.yMin + region.yMax) / 2]
        #expect(centre.r > 200 && centre.b < 60, "\(centre)")
        #expect(panel[heatLeft + magnify * region.xMin - 1, header + magnify * region.yMin + 2] == .white)
        #expect(panel[margin + 100, header + 100] == RGBColour(128, 128, 128))
    }

    @Test func longTitlesKeepTheirEnd() {
        let title = "line-7/camera-2/frame-000123456"
        #expect(OverlayPanel.fitted(title, width: 1000, scale: 2) == title)
        let short = OverlayPanel.fitted(title, width: 150, scale: 2)
        #expect(short.hasPrefix("..") && title.hasSuffix(short.dropFirst(2)) && BitmapFont.width(of: short, scale: 2) <= 150)
        #expect(OverlayPanel.fitted(title, width: 10, scale: 2) == "")
    }

    @Test func heightScaleSpansThePartsReliefInRoundSteps() {
        // Table at 0, a part from 27.3 to 31.6 mm: steps of niceCeiling(4.3 / 4) = 2 mm → [26, 32].
        let metres = [Float](repeating: 0, count: 50) + (0..<200).map { 0.0273 + 0.0043 * Float($0) / 199 }
        #expect(OverlayPanel.HeightScale(HeightField(height: 1, width: 250, metres: metres)) == .init(bottom: 26, top: 32))
        #expect(OverlayPanel.HeightScale(HeightField(height: 1, width: 2, metres: [0, .nan])) == .init(bottom: 0, top: 1))
    }

    @Test func heightsAreMeasuredAlongThePlaneNormal() {
        // Plane z = 0.5 seen from the origin: n = (0, 0, −1), d = 0.5; a point at z = 0.49 m is 1 cm up.
        let cloud = Tensor(shape: [1, 2, 3], scalars: [0.1, 0, 490, 0, 0, 0])
        let field = HeightField(cloud: cloud, metresPerUnit: 0.001, planeNormal: SIMD3(0, 0, -1), planeOffset: 0.5)
        #expect(abs(field.metres[0] - 0.01) < 1e-6 && field.metres[1].isNaN)
    }

    @Test func ratesAtTheThreshold() throws {
        let scores: [Float] = [0.1, 0.5, 0.9, 0.3, 0.7, 0.5]
        let anomalous = [false, false, true, true, true, true]
        let rates = ThresholdRates(scores: scores, anomalous: anomalous, threshold: 0.5)
        #expect((rates.rejectedDefective, rates.passedDefective, rates.rejectedGood, rates.passedGood) == (2, 2, 0, 2))
        #expect(rates.falseRejectRate == 0 && rates.missRate == 0.5)
        let strict = ThresholdRates(scores: scores, anomalous: anomalous, threshold: 0.2)
        #expect(strict.falseRejectRate == 0.5 && strict.missRate == 0)
        let onlyDefects = ThresholdRates(scores: [1], anomalous: [true], threshold: 0)
        let json = String(decoding: try JSONEncoder().encode(onlyDefects), as: UTF8.self)
        #expect(json.contains("\"false_reject_rate\":null") && json.contains("\"miss_rate\":0"))
        #expect(onlyDefects.jsonObject["false_reject_rate"] is NSNull)
    }

    @Test func rocPointsIntegrateToTheArea() throws {
        let scores: [Float] = [0.9, 0.8, 0.8, 0.4, 0.3, 0.3, 0.1]
        let labels = [true, true, false, true, false, true, false]
        let curve = try #require(ROCCurve(scores: scores, labels: labels))
        #expect(curve.fpr.first == 0 && curve.tpr.first == 0 && curve.fpr.last == 1 && curve.tpr.last == 1)
        #expect(curve.fpr.count == 6)                                        // (0, 0) + 5 distinct scores
        var area = 0.0
        for i in 1..<curve.fpr.count { area += (curve.fpr[i] - curve.fpr[i - 1]) * (curve.tpr[i] + curve.tpr[i - 1]) / 2 }
        #expect(abs(area - ROC.area(scores: scores, labels: labels)!) < 1e-12)
        #expect(ROCCurve(scores: [1], labels: [true]) == nil)
    }

    @Test func plotsHaveTheirSizeAndVerticalLabelsRotate() {
        let plot = CurvePlot(title: "t", xLabel: "x", yLabel: "y", xRange: 0...1, yRange: 0...1, xTicks: [0, 0.5, 1],
                             yTicks: [0, 1], series: [.init(name: "s", x: [0, 2], y: [0, 2], colour: .black)])
        let image = plot.render(width: 300, height: 200)
        #expect(image.width == 300 && image.height == 200)
        let text = CurvePlot.verticalText("AB", scale: 1, colour: .black, background: .white)
        #expect(text.width == 8 && text.height == 11)
        #expect(CurvePlot.tickLabel(0.1, step: 0.1) == "0.1" && CurvePlot.tickLabel(0.05, step: 0.05) == "0.05")
    }

    @Test func reportPageListsMistakesAndWritesTheCurves() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let samples = [("good", "000", 0.2, false), ("good", "001", 0.9, false), ("crack", "000", 1.5, true),
                       ("crack", "001", 0.4, true)].map { defect, id, score, anomalous in
            EvaluationPage.Sample(key: "\(defect)/\(id)", defect: defect, score: Float(score), anomalous: anomalous,
                                  image: "overlays/\(defect)/\(id).png")
        }
        let metrics = DetectionMetrics(samples: 4, nominal: 2, anomalous: 2, regions: 2, imageAUROC: 0.75, pixelAUROC: 0.9,
                                       auPRO: [0.8, 0.6, 0.5, 0.2])
        let pro = PROCurve(fpr: [0, 0.01, 0.2, 0.5], pro: [0, 0.4, 0.9, 1], regions: 2, nominalPixels: 100)
        let page = EvaluationPage(title: "widget <test>", details: [("tier", "small")], overall: metrics,
                                  byDefect: ["crack": metrics], threshold: 0.5, samples: samples, pro: pro)
        try page.write(to: directory)
        let html = try String(contentsOf: directory.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(html.contains("widget &lt;test&gt;"))
        #expect(html.contains("FALSE REJECT") && html.contains("MISSED"))
        #expect(html.contains("src=\"overlays/crack/000.png\"") && html.contains("src=\"roc.png\"") && html.contains("src=\"pro.png\""))
        #expect(html.contains("50.0 %"))                                     // both rates
        let roc = try PNGFile.readRGB(directory.appendingPathComponent("roc.png"))
        #expect(roc.width == 640 && roc.height == 480)
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("pro.png").path))
    }
}
