import CFMData
import CFMDetector
import CFMModels
import CFMService
import Foundation
import XCTest

/// `BenchJob` on the tiny tier: seeded extractor weights holding the blocks it reads, and the
/// job's own seeded random mappers. Timings are only checked to be there, never compared.
final class BenchJobTests: XCTestCase {
    /// The detector's stages and preprocessing's sub-stages (the decode first), in the order they run.
    private static let stages = ["preprocess", "extract2d", "fps", "knn", "extract3d", "interpolate", "align", "map", "score"]
    private static let preprocessStages = ["decode", "holes_units", "plane", "clusters", "resize"]

    /// Options for a tiny-tier bench of `frames` frames with seeded extractors written into `dir`.
    private func tinyBench(in dir: TempDir, frames: Int) throws -> BenchJob.Options {
        var options = BenchJob.Options()
        options.extractors = dir.url.appendingPathComponent("extractors")
        try SeededWeightFiles.writeExtractors(seed: 0, for: .tiny, to: options.extractors!)
        (options.tier, options.frames) = (.tiny, frames)
        return options
    }

    /// Every stage and sub-stage timed in pipeline order, the FLOPs of the arithmetic stages,
    /// and the memory growth of the first and the last frame.
    private func checkStages(_ report: BenchReport, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(report.stagesMs.map(\.name), Self.stages, file: file, line: line)
        XCTAssertEqual(report.preprocessStagesMs.map(\.name), Self.preprocessStages, file: file, line: line)
        for (name, ms) in report.stagesMs + report.preprocessStagesMs { XCTAssertGreaterThan(ms, 0, name, file: file, line: line) }
        XCTAssertGreaterThan(report.medianMs, 0, file: file, line: line)
        XCTAssertEqual(Set(report.stageFlops.keys), ["extract2d", "extract3d", "map"], file: file, line: line)
        XCTAssertTrue(report.stageFlops.values.allSatisfy { $0 > 0 }, "\(report.stageFlops)", file: file, line: line)
        XCTAssertTrue(report.foregroundPoints > 0 && report.validPixels > 0, file: file, line: line)
        XCTAssertGreaterThan(report.peakResidentMB, 0, file: file, line: line)
    }

    func testSyntheticFrameReportsEveryStageAndWhatTheLastFrameAdds() throws {
        let dir = TempDir()
        var options = try tinyBench(in: dir, frames: 2)
        options.source = .synthetic(width: 640, height: 480)
        let report = try BenchJob.run(options)
        XCTAssertEqual([report.tier.rawValue, report.precision.rawValue], ["tiny", "fp32"])
        XCTAssertEqual([report.frames, report.sensorHeight, report.sensorWidth], [2, 480, 640])
        checkStages(report)
        // The message's parts are decoded in place (a copy of the cloud would add 12 bytes a
        // pixel), and the last frame reuses what the frames before left. Both measure pages
        // first touched: memory the allocator freed and kept resident is reused unseen, so a
        // small per-frame leak may not show; some that another thread's arena takes up may.
        // (Where the peak cannot be reset, every growth is measured from the process's peak.)
        let pixels = Double(report.sensorHeight * report.sensorWidth), perPixel = report.growthBytesPerPixel
        if FileManager.default.isWritableFile(atPath: "/proc/self/clear_refs") {
            XCTAssertLessThan(report.firstGrowth.decode * 1_048_576 / pixels, 4, "first frame's decode, bytes per pixel")
            XCTAssertLessThan(perPixel.steady, 12, "last frame, bytes per pixel (first frame \(perPixel.first))")
        }

        // The JSON scripts read: every key, the nested ones included.
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(report)) as? [String: Any])
        XCTAssertEqual(Set(json.keys), ["tier", "precision", "frames", "threads", "median_ms", "fps", "peak_rss_mb", "sensor",
                                        "preprocess_stages_ms", "preprocess_ns_per_pixel", "rss_growth_mb", "rss_growth_steady_mb",
                                        "rss_growth_bytes_per_pixel", "stages_ms", "gflop", "gflops_per_s", "foreground_points",
                                        "valid_pixels"])
        func object(_ key: String) -> [String: Any] { json[key] as? [String: Any] ?? [:] }
        XCTAssertEqual(object("sensor") as? [String: Int], ["height": 480, "width": 640])
        for key in ["rss_growth_mb", "rss_growth_steady_mb"] {
            XCTAssertEqual(Set(object(key).keys), ["decode", "preprocess", "frame"], key)
        }
        XCTAssertEqual(Set(object("rss_growth_bytes_per_pixel").keys), ["first", "steady"])
        XCTAssertEqual(object("rss_growth_bytes_per_pixel")["first"] as? Double ?? 0, perPixel.first, accuracy: 1e-9 * perPixel.first)
        XCTAssertEqual(Set(object("stages_ms").keys), Set(Self.stages))
        XCTAssertEqual(Set(object("preprocess_stages_ms").keys), Set(Self.preprocessStages))
        XCTAssertEqual(Set(object("gflops_per_s").keys), ["extract2d", "extract3d", "map"])
        XCTAssertEqual(json["fps"] as? Double ?? 0, 1000 / report.medianMs, accuracy: 1e-9 * report.framesPerSecond)
    }

    func testFilesAreReadByEveryFramesDecode() throws {
        let dir = TempDir()
        _ = try SyntheticDataset.generate(.init(size: 96, seed: 1, classes: [.cookie], trainCount: 1, validationCount: 0,
                                                testCountPerType: 0), to: dir.url.appendingPathComponent("data"))
        let sample = dir.url.appendingPathComponent("data/cookie/train/good")
        var options = try tinyBench(in: dir, frames: 1)
        options.source = .files(rgb: sample.appendingPathComponent("rgb/000.png"), xyz: sample.appendingPathComponent("xyz/000.tiff"))
        let report = try BenchJob.run(options)
        XCTAssertEqual([report.frames, report.sensorHeight, report.sensorWidth], [1, 96, 96])
        checkStages(report)

        let missing = dir.url.appendingPathComponent("missing.png")
        options.source = .files(rgb: missing, xyz: sample.appendingPathComponent("xyz/000.tiff"))
        XCTAssertThrowsError(try BenchJob.run(options)) { XCTAssertTrue("\($0)".contains(missing.path), "\($0)") }
    }

    /// The peak counts the pages touched since the reset: 64 MiB of fresh pages (mapped here,
    /// not taken from the allocator, which may hand out pages an earlier test left resident)
    /// raise it by that much; once they are unmapped, a reset brings it back down.
    func testPeakResidentSizeCountsWhatWasTouchedSinceTheReset() throws {
        try XCTSkipUnless(FileManager.default.isWritableFile(atPath: "/proc/self/clear_refs"), "the peak cannot be reset here")
        let bytes = 64 << 20
        let base = ResidentMemory.resetPeak()
        let block = try XCTUnwrap(mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        XCTAssertNotEqual(block, MAP_FAILED)
        block.initializeMemory(as: UInt8.self, repeating: 1, count: bytes)
        XCTAssertGreaterThan(ResidentMemory.peakMegabytes() - base, 60)
        munmap(block, bytes)
        let after = ResidentMemory.resetPeak()
        XCTAssertLessThan(ResidentMemory.peakMegabytes() - after, 8)
        XCTAssertLessThan(ResidentMemory.currentMegabytes(), base + 8)
    }

    func testRefusesWhatCannotBeTimed() {
        var options = BenchJob.Options()
        options.frames = 0
        XCTAssertThrowsError(try BenchJob.run(options)) {
            XCTAssertEqual($0 as? BenchError, BenchError("frames must be at least 1, not 0"))
        }
        options.frames = 1
        options.source = .synthetic(width: 0, height: 8)
        XCTAssertThrowsError(try BenchJob.run(options)) {
            XCTAssertEqual($0 as? BenchError, BenchError("synthetic sensor frame 0×8: both sides must be at least 1 pixel"))
        }
    }
}
