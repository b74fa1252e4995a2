import CFMData
import CFMTensor
@testable import CFMService
import Foundation
import Logging
import XCTest

/// `recording:`: frames scored by a running `EdgeService` (a test processor: frame ids
/// ending in an even number pass, odd ones are rejected) land in the MVTec 3D-AD layout,
/// and `MVTec3DDataset` reads the folder back as it is.
final class RecordingTests: XCTestCase {
    /// Serves over TCP loopback with `recording`, sends `frames`, waits for every result,
    /// stops; returns the recorder's counters.
    private func serve(_ recording: ServiceConfig.Recording, frames: [Frame]) throws -> FrameRecorder.Counts {
        var config = ServiceConfig()
        config.input.endpoint = "tcp://127.0.0.1:*"
        config.input.pattern = .pull
        config.input.mode = .bind
        config.output.endpoint = "tcp://127.0.0.1:*"
        config.pipeline.queueDepth = 64
        config.pipeline.overflow = .block
        config.logging.journald = .off
        config.recording = recording
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let service = EdgeService(config: config, logger: logger) { _ in FrameStages(scoring: [slowScorer(0)]) }
        let (thread, _) = startService(service)
        XCTAssertTrue(waitUntil(10) { service.outputEndpoint != nil })
        let sensor = try FakeSensor(input: try XCTUnwrap(service.inputEndpoint), output: try XCTUnwrap(service.outputEndpoint))
        usleep(300_000) // the subscription reaches the PUB
        // One at a time: the recorder's queue (4 frames) is never full, nothing is skipped.
        for frame in frames {
            try sensor.send(FrameCodec.encode(frame))
            XCTAssertEqual(try sensor.results(1).count, 1, frame.frameId)
        }
        service.requestStop()
        XCTAssertTrue(waitUntil(10) { thread.isFinished })
        return try XCTUnwrap(service.recorder).snapshot
    }

    private func recording(_ dir: TempDir, which: ServiceConfig.Recording.Which) -> ServiceConfig.Recording {
        var r = ServiceConfig.Recording()
        r.directory = dir.path("recorded")
        r.className = "line"
        r.which = which
        return r
    }

    /// The XYZ a recorded frame must hold: metres, a pixel with a non-finite coordinate as (0, 0, 0).
    private func expectedMetres(_ frame: Frame) -> [Float] {
        var out = frame.cloud.map { $0 * frame.unit.metres }
        for p in stride(from: 0, to: out.count, by: 3) where !out[p..<p + 3].allSatisfy(\.isFinite) {
            out.replaceSubrange(p..<p + 3, with: [0, 0, 0])
        }
        return out
    }

    func testPassesAreRecordedAsATrainingFolderThatReadsBackExactly() throws {
        let dir = TempDir()
        var frames = (0..<8).map { makeFrame(id: "f-\($0)", width: 40, height: 30, unit: $0 == 2 ? .mm : .m) }
        frames[0].cloud[3 * 41 + 2] = .nan // a hole: recorded as (0, 0, 0)
        frames[4].rgb[7] = 201               // frames differ in their pixels
        let counts = try serve(recording(dir, which: .pass), frames: frames)
        XCTAssertEqual(counts, FrameRecorder.Counts(recorded: 4, skipped: 0, capped: false))

        let line = try MVTec3DDataset(directory: dir.url.appendingPathComponent("recorded")).class("line")
        let samples = try line.samples(.train)
        XCTAssertEqual(samples.map(\.id), ["000", "001", "002", "003"])
        XCTAssertEqual(samples.map(\.defect), ["good", "good", "good", "good"])
        for (sample, frame) in zip(samples, [frames[0], frames[2], frames[4], frames[6]]) {
            XCTAssertEqual(try PNGFile.readRGB(sample.rgb).bytes, Array(frame.rgb), sample.id)
            let cloud = try TIFFFile.readPointCloud(sample.xyz)
            XCTAssertEqual(cloud.shape, [30, 40, 3])
            let expected = expectedMetres(frame)
            XCTAssertEqual(zip(cloud.scalars, expected).map { abs($0 - $1) }.max() ?? 1, 0, accuracy: 1e-7, sample.id)
        }
        let hole = try TIFFFile.readPointCloud(samples[0].xyz).scalars[(3 * 41)..<(3 * 41 + 3)]
        XCTAssertEqual(Array(hole), [0, 0, 0], "a NaN pixel is recorded as no measurement")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("recorded/line/test")), "which: pass records no rejects")
    }

    func testRejectsGoToTheirOwnFolderAndARestartNumbersOn() throws {
        let dir = TempDir()
        let frames = (0..<4).map { makeFrame(id: "f-\($0)", width: 20, height: 16) }
        XCTAssertEqual(try serve(recording(dir, which: .all), frames: frames).recorded, 4)
        XCTAssertEqual(try serve(recording(dir, which: .all), frames: frames).recorded, 4)
        let line = try MVTec3DClass(directory: dir.url.appendingPathComponent("recorded/line"))
        XCTAssertEqual(try line.samples(.train).map(\.id), ["000", "001", "002", "003"], "passes of both runs, none overwritten")
        let rejects = try FileManager.default.contentsOfDirectory(atPath: dir.path("recorded/line/test/reject/rgb")).sorted()
        XCTAssertEqual(rejects, ["000.png", "001.png", "002.png", "003.png"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path("recorded/line/test/reject/xyz")).count, 4)
    }

    func testCapsStopRecordingAndCountWhatTheFolderHolds() throws {
        let frames = (0..<8).map { makeFrame(id: "f-\($0)", width: 24, height: 20) }
        // max_frames: 3 of the 8 frames (passes and rejects together).
        let byCount = TempDir()
        var r = recording(byCount, which: .all)
        r.maxFrames = 3
        XCTAssertEqual(try serve(r, frames: frames), FrameRecorder.Counts(recorded: 3, skipped: 0, capped: true))
        let train = try MVTec3DClass(directory: byCount.url.appendingPathComponent("recorded/line")).samples(.train)
        XCTAssertEqual(train.count, 2, "f-0 and f-2 pass, f-1 is the rejected third")
        // The folder already holds 3: a restart records nothing more.
        XCTAssertEqual(try serve(r, frames: frames), FrameRecorder.Counts(recorded: 0, skipped: 0, capped: true))

        // max_bytes: room for two frames and a half (the frames are alike: equal file sizes).
        let one = TempDir()
        var single = recording(one, which: .pass)
        single.maxFrames = 1
        _ = try serve(single, frames: [frames[0]])
        let frameBytes = try ["rgb/000.png", "xyz/000.tiff"].reduce(0) {
            $0 + (try FileManager.default.attributesOfItem(atPath: one.path("recorded/line/train/good/\($1)"))[.size] as! Int)
        }
        let byBytes = TempDir()
        r = recording(byBytes, which: .pass)
        r.maxFrames = nil
        r.maxBytes = frameBytes * 5 / 2
        XCTAssertEqual(try serve(r, frames: frames), FrameRecorder.Counts(recorded: 2, skipped: 0, capped: true))
        let files = try FileManager.default.contentsOfDirectory(atPath: byBytes.path("recorded/line/train/good/rgb"))
            + FileManager.default.contentsOfDirectory(atPath: byBytes.path("recorded/line/train/good/xyz"))
        XCTAssertEqual(files.sorted(), ["000.png", "000.tiff", "001.png", "001.tiff"], "the frame past max_bytes is removed again")
    }

    func testAFullWriterQueueSkipsFramesWithoutWaiting() throws {
        let dir = TempDir()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let recorder = FrameRecorder(settings: recording(dir, which: .all), logger: logger, queueCapacity: 2)
        // Not started: nothing drains the queue, so the third offer finds it full.
        let frame = makeFrame(id: "f-0", width: 20, height: 16)
        for _ in 0..<5 { recorder.offer(frame, verdict: .pass) }
        recorder.offer(frame, verdict: .error) // never recorded, never counted
        XCTAssertEqual(recorder.snapshot, FrameRecorder.Counts(recorded: 0, skipped: 3, capped: false))
        try recorder.start()
        XCTAssertTrue(recorder.finish(until: monotonicNs() + 10_000_000_000))
        XCTAssertEqual(recorder.snapshot, FrameRecorder.Counts(recorded: 2, skipped: 3, capped: false))
    }

    func testRecordingConfig() throws {
        XCTAssertNil(try ServiceConfig.parse("").recording.directory, "off by default")
        let c = try ServiceConfig.parse("recording: {directory: /data/line1, class_name: bagel, which: all, max_frames: null, max_bytes: 5}")
        XCTAssertEqual(c.recording.directory, "/data/line1")
        XCTAssertEqual(c.recording.className, "bagel")
        XCTAssertEqual(c.recording.which, .all)
        XCTAssertNil(c.recording.maxFrames, "null lifts the cap")
        XCTAssertEqual(c.recording.maxBytes, 5)
        XCTAssertEqual(try ServiceConfig.parse("recording: {directory: /d}").recording.maxFrames, 1000, "an absent key keeps the default")
        for (yaml, reason) in [("recording: {which: some}", "recording.which: 'some' is not one of all, pass, reject"),
                               ("recording: {max_frames: 0}", "recording.max_frames: 0 is below 1 (null = no cap)"),
                               ("recording: {class_name: a/b}", "recording.class_name: 'a/b' is not a folder name"),
                               ("recording: {size: 3}", "unknown key 'recording.size'")] {
            XCTAssertThrowsError(try ServiceConfig.parse(yaml, file: "c.yaml"), yaml) { XCTAssertTrue("\($0)".contains(reason), "\($0)") }
        }
    }
}
