import CFMData
import CFMTensor
import Foundation
import Testing

/// Map ↔ sensor pixel geometry and defect regions on hand-built maps, boxes checked exactly.
@Suite struct DefectRegionsTests {
    /// A 224 × 224 map of zeros with `pixels` set to their values (column u, row v).
    private func map(_ pixels: [(u: Int, v: Int, value: Float)]) -> Tensor {
        var map = Tensor(shape: [224, 224])
        for p in pixels { map.scalars[p.v * 224 + p.u] = p.value }
        return map
    }

    /// Every map pixel of the rectangle u ∈ us, v ∈ vs at `value`.
    private func rectangle(_ us: ClosedRange<Int>, _ vs: ClosedRange<Int>, _ value: Float) -> [(u: Int, v: Int, value: Float)] {
        vs.flatMap { v in us.map { u in (u: u, v: v, value: value) } }
    }

    @Test func theProtocolDocumentsExample() {
        // docs/protocol.md: 800 × 600, map pixel (112, 56) covers columns 400–403, rows 100–103;
        // map rows above 28 are padding.
        let grid = SensorMapGrid(sensorHeight: 600, sensorWidth: 800)
        #expect((grid.side, grid.left, grid.top) == (800, 0, 100))
        #expect(grid.sensorColumns(ofMapColumn: 112) == 400..<404)
        #expect(grid.sensorRows(ofMapRow: 56) == 100..<104)
        #expect(grid.sensorRows(ofMapRow: 27).isEmpty)
        #expect(grid.sensorRows(ofMapRow: 28) == 0..<4)
        #expect(grid.mapRow(ofSensorRow: 0) == 28)
    }

    @Test(arguments: [(600, 800), (800, 600), (2048, 2448), (2448, 2048), (60, 100), (224, 224), (1, 500)])
    func footprintsTileTheFrameAndInvertTheSensorToMapRule(height: Int, width: Int) {
        let grid = SensorMapGrid(sensorHeight: height, sensorWidth: width)
        for (extent, span, index) in [(width, grid.sensorColumns(ofMapColumn:), grid.mapColumn(ofSensorColumn:)),
                                      (height, grid.sensorRows(ofMapRow:), grid.mapRow(ofSensorRow:))] {
            var next = 0
            for i in 0..<224 {
                let covered = span(i)
                if covered.isEmpty { continue }
                #expect(covered.lowerBound == next, "map index \(i) of a \(width)×\(height) frame")
                for x in covered { #expect(index(x) == i) }
                next = covered.upperBound
            }
            #expect(next == extent)
        }
    }

    @Test func regionsOnALandscapeFrameWithPaddingAboveAndBelow() {
        let grid = SensorMapGrid(sensorHeight: 600, sensorWidth: 800)
        let values = rectangle(112...115, 56...57, 1)
            + [(u: 10, v: 100, value: 0.9),      // a single pixel, 3.6 in score units
               (u: 11, v: 100, value: 0.7),      // 2.8: below the threshold, not part of it
               (u: 50, v: 10, value: 0.95),      // entirely in the top padding: no sensor pixel
               (u: 200, v: 27, value: 0.98),     // padding …
               (u: 200, v: 28, value: 0.92)]     // … connected to the frame's first rows
        let found = DefectRegions(map: map(values), score: 4, threshold: 3, grid: grid)
        #expect(found.total == 3)
        #expect(found.regions == [
            DefectRegion(box: [400, 100, 415, 108], area: 15 * 8, peak: 4),
            // Equal areas: the higher peak first (the padding pixel's value counts for the peak).
            DefectRegion(box: [715, 0, 718, 4], area: 3 * 4, peak: Float(0.98) * 4),
            DefectRegion(box: [36, 258, 40, 261], area: 4 * 3, peak: Float(0.9) * 4),
        ])
    }

    @Test func regionsOnAPortraitFrameArePaddedLeftAndRight() {
        let grid = SensorMapGrid(sensorHeight: 800, sensorWidth: 600)
        let found = DefectRegions(map: map(rectangle(56...57, 112...115, 2)), score: 5, threshold: 1, grid: grid)
        #expect(found.regions == [DefectRegion(box: [100, 400, 108, 415], area: 8 * 15, peak: 5)])
    }

    @Test func regionsOnA2448By2048FrameClipToTheBottomEdge() {
        // s = 2448 / 224 ≈ 10.93, 200 padding rows on top and at the bottom.
        let grid = SensorMapGrid(sensorHeight: 2048, sensorWidth: 2448)
        let values = rectangle(100...101, 100...100, 3) + rectangle(223...223, 204...206, 2.5)
        let found = DefectRegions(map: map(values), score: 6, threshold: 2, grid: grid)
        #expect(found.regions == [
            DefectRegion(box: [1093, 893, 1115, 904], area: 22 * 11, peak: 6),
            // Map row 206 is bottom padding; row 205 is cut at the frame's last row.
            DefectRegion(box: [2438, 2030, 2448, 2048], area: 10 * 18, peak: 5),
        ])
    }

    @Test func diagonalNeighboursAreOneRegionAndAGapSplits() {
        let grid = SensorMapGrid(sensorHeight: 224, sensorWidth: 224)
        let values: [(u: Int, v: Int, value: Float)] = [(u: 5, v: 5, value: 1), (u: 6, v: 6, value: 1), (u: 8, v: 6, value: 1)]
        let found = DefectRegions(map: map(values), score: 1, threshold: 0.5, grid: grid)
        #expect(found.regions == [DefectRegion(box: [5, 5, 7, 7], area: 2, peak: 1),
                                  DefectRegion(box: [8, 6, 9, 7], area: 1, peak: 1)])
    }

    @Test func aPassHasNoRegionAndTheCapKeepsTheCount() {
        let grid = SensorMapGrid(sensorHeight: 300, sensorWidth: 400)
        let values = (0..<5).flatMap { i in rectangle((40 * i)...(40 * i + i), 100...100, 1) }
        #expect(DefectRegions(map: map(values), score: 2, threshold: 2, grid: grid).total == 0)
        let capped = DefectRegions(map: map(values), score: 2, threshold: 1.5, grid: grid, limit: 2)
        #expect(capped.total == 5)
        #expect(capped.regions.map(\.xMin) == [grid.sensorColumns(ofMapColumn: 160).lowerBound,
                                                grid.sensorColumns(ofMapColumn: 120).lowerBound])
        #expect(DefectRegions(map: map([]), score: 0, threshold: 0, grid: grid).total == 0)
    }

    @Test func jsonKeysAreBoxAreaPeak() throws {
        let data = try JSONEncoder().encode(DefectRegion(box: [1, 2, 3, 4], area: 4, peak: 2.5))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(Set(object.keys) == ["box", "area", "peak"])
        #expect(object["box"] as? [Int] == [1, 2, 3, 4])
    }
}
