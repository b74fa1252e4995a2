@testable import CFMService
import CFMData
import CFMDetector
import CFMTensor
import XCTest

/// The serve processor's regions: a reject says where its defect is, in the frame's own pixels.
final class ResultRegionsTests: XCTestCase {
    /// A 40×24 frame (padded to 40×40 with 8 rows on top) and a 20×20 map with one hot blob: the
    /// reject's region lies inside the frame, exactly on the blob's sensor pixels.
    func testARejectCarriesARegionInsideTheFrame() throws {
        let frame = makeFrame(id: "r", width: 40, height: 24)
        let size = 20
        var values = [Float](repeating: 0.1, count: size * size)
        for v in 9..<12 { for u in 12..<15 { values[v * size + u] = 1 } } // map rows 9..<12, columns 12..<15
        let map = Tensor(shape: [size, size], scalars: values)
        let score: Float = 5
        let regions = DetectorProcessing.regions(map: map, score: score, threshold: 2, frame: frame)
        XCTAssertEqual(regions.total, 1)
        let region = try XCTUnwrap(regions.regions.first)
        XCTAssertEqual(region.peak, score)
        // Each map pixel is 2 sensor pixels; the frame starts 8 rows below the padded square's top.
        XCTAssertEqual(region.box, [24, 10, 30, 16])
        XCTAssertEqual(region.area, 36)
        XCTAssertTrue(region.xMin >= 0 && region.yMin >= 0 && region.xMax <= frame.width && region.yMax <= frame.height)

        let pass = DetectorProcessing.regions(map: map, score: 1.5, threshold: 2, frame: frame)
        XCTAssertEqual(pass.regions, [])
        XCTAssertEqual(pass.total, 0)
    }

    /// The pipeline carries a processor's regions into the published result; errors carry none.
    func testThePipelineCarriesRegionsIntoTheResult() throws {
        let region = DefectRegion(box: [1, 2, 3, 4], area: 4, peak: 3)
        var found = DefectRegions(map: Tensor(shape: [2, 2], scalars: [0, 0, 0, 0]), score: 0, threshold: 1,
                                    grid: SensorMapGrid(sensorHeight: 4, sensorWidth: 4, mapSize: 2))
        (found.regions, found.total) = ([region], 2)
        let regions = found
        let harness = PipelineHarness(.init(queueDepth: 4, overflow: .block), [{ frame in
            if frame.frameId.hasPrefix("fail") { throw DetectorError.tooFewPoints(found: 1, needed: 128) }
            return Inference(score: 3, threshold: 2, tier: "tiny", model: "fake", regions: regions)
        }])
        harness.pipeline.submit(makeFrame(id: "ok-0", width: 4, height: 4))
        harness.pipeline.submit(makeFrame(id: "fail-1", width: 4, height: 4))
        XCTAssertTrue(harness.stop(drainTimeout: 5).drained)
        let results = harness.results
        XCTAssertEqual(results.count, 2)
        XCTAssertEqual(results.first?.regions, [region])
        XCTAssertEqual(results.first?.regionsTotal, 2)
        XCTAssertNil(results.last?.regions)
        XCTAssertNil(results.last?.regionsTotal)
    }
}
