import CFMData
import CFMTensor
import Foundation
import Logging

/// Records scored frames from the line into a class folder of the MVTec 3D-AD layout, so a
/// line collects nominal parts for training without extra tooling:
///
/// - passes → `<directory>/<class_name>/train/good/{rgb/NNN.png, xyz/NNN.tiff}`, which
///   `cfm train --data <directory>/<class_name>` reads as it is;
/// - rejects → `<directory>/<class_name>/test/reject/{rgb/NNN.png, xyz/NNN.tiff}`, for review
///   (no `gt` masks: they are not labelled defects, so `cfm eval` does not read them).
///
/// PNG: the frame's RGB as received (8-bit RGB). TIFF: the frame's XYZ as float32 [H, W, 3]
/// in metres, holes (NaN, ±inf) written as 0 ("no measurement" in the layout). NNN counts
/// on from the highest number already in the folder, so a restart never overwrites.
///
/// Off the inference path: `offer` (on a worker thread, after scoring) only queues the frame
/// in a bounded queue; the writer thread encodes and writes. When the queue is full the
/// frame is not recorded and counted as `skipped`: the line never waits for the disk.
/// Memory: at most `queueCapacity` frames held. The caps (`max_frames`, `max_bytes`) count
/// what the folders recorded into already hold (a restart does not start over): recording stops, said once in the log, at the first frame
/// that would pass either (a frame that would pass `max_bytes` is removed again).
public final class FrameRecorder: @unchecked Sendable {
    /// Counters since the recorder started.
    public struct Counts: Sendable, Equatable {
        /// Frames written (this run).
        public var recorded = 0
        /// Frames not recorded because the writer was behind (queue full) or a write failed.
        public var skipped = 0
        /// A cap was reached: nothing more is recorded.
        public var capped = false
    }

    public let settings: ServiceConfig.Recording
    public let queueCapacity: Int
    private let logger: Logger
    private let condition = NSCondition()
    private var queue: [(frame: Frame, verdict: Verdict)] = []
    private var counts = Counts()
    private var closed = false
    private var thread: ServiceThread?
    // Writer thread only (after `start`).
    private var folderFrames = 0
    private var folderBytes = 0
    private var nextIndex: [Verdict: Int] = [:]
    /// The last write failed: further failures are counted, not logged, until one succeeds.
    private var failing = false

    /// `settings.directory` must be set. `queueCapacity`: frames waiting for the writer.
    public init(settings: ServiceConfig.Recording, logger: Logger, queueCapacity: Int = 4) {
        precondition(settings.directory != nil, "recording needs a directory")
        (self.settings, self.logger, self.queueCapacity) = (settings, logger, max(queueCapacity, 1))
    }

    /// The class folder recorded into.
    public var classDirectory: URL {
        URL(fileURLWithPath: settings.directory!).appendingPathComponent(settings.className)
    }

    /// The sample folder of a verdict (`train/good` for passes, `test/reject` for rejects).
    public func sampleDirectory(_ verdict: Verdict) -> URL {
        classDirectory.appendingPathComponent(verdict == .pass ? "train/\(MVTec3DClass.nominal)" : "test/reject")
    }

    /// Creates the folders, counts what they hold (towards the caps) and starts the writer.
    /// Throws when the folders cannot be created.
    public func start() throws {
        for verdict in [Verdict.pass, .reject] where settings.which.includes(verdict) {
            let folder = sampleDirectory(verdict)
            var highest = -1
            for kind in ["rgb", "xyz"] {
                let dir = folder.appendingPathComponent(kind)
                do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
                    throw ServiceSetupError("recording: cannot create \(dir.path): \(error.localizedDescription)")
                }
                for name in (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [] where !name.hasPrefix(".") {
                    let file = dir.appendingPathComponent(name)
                    folderBytes += ((try? FileManager.default.attributesOfItem(atPath: file.path)[.size]) as? Int) ?? 0
                    if kind == "rgb" { folderFrames += 1 }
                    highest = max(highest, Int(file.deletingPathExtension().lastPathComponent) ?? -1)
                }
            }
            nextIndex[verdict] = highest + 1
        }
        let t = ServiceThread(name: "cfm-recorder") { [self] in writerLoop() }
        thread = t
        t.start()
    }

    /// Queues a scored frame for recording if its verdict is wanted; never waits.
    public func offer(_ frame: Frame, verdict: Verdict) {
        guard settings.which.includes(verdict) else { return }
        condition.lock(); defer { condition.unlock() }
        guard !counts.capped, !closed else { return }
        guard queue.count < queueCapacity else { counts.skipped += 1; return }
        queue.append((frame, verdict))
        condition.broadcast()
    }

    /// The counters now.
    public var snapshot: Counts { condition.lock(); defer { condition.unlock() }; return counts }

    /// Writes what is queued, then stops the writer; waits until the monotonic `deadline`
    /// (ns; nil = forever). Returns whether the writer finished.
    @discardableResult
    public func finish(until deadline: UInt64? = nil) -> Bool {
        condition.lock(); closed = true; condition.broadcast(); condition.unlock()
        return thread?.join(until: deadline) ?? true
    }

    private func writerLoop() {
        while true {
            condition.lock()
            while queue.isEmpty && !closed { condition.wait() }
            if queue.isEmpty { condition.unlock(); return }
            let (frame, verdict) = queue.removeFirst()
            condition.unlock()
            write(frame, verdict: verdict)
        }
    }

    /// Writes one frame as NNN.png + NNN.tiff, or stops at a cap.
    private func write(_ frame: Frame, verdict: Verdict) {
        if let maxFrames = settings.maxFrames, folderFrames >= maxFrames { return stopAtCap("max_frames \(maxFrames)") }
        let index = nextIndex[verdict, default: 0]
        let stem = String(format: "%03d", index)
        let folder = sampleDirectory(verdict)
        let png = folder.appendingPathComponent("rgb/\(stem).png"), tiff = folder.appendingPathComponent("xyz/\(stem).tiff")
        do {
            try PNGFile.write(RGBImage(height: frame.height, width: frame.width, bytes: Array(frame.rgb)), to: png)
            try TIFFFile.write(Self.metresWithHolesAsZero(frame), to: tiff)
        } catch {
            try? FileManager.default.removeItem(at: png)
            if !failing { logger.warning("recording: frame \(frame.frameId) not recorded (counted as skipped until a write succeeds): \(error)") }
            failing = true
            condition.lock(); counts.skipped += 1; condition.unlock()
            return
        }
        failing = false
        nextIndex[verdict] = index + 1
        let bytes = [png, tiff].reduce(0) { $0 + (((try? FileManager.default.attributesOfItem(atPath: $1.path)[.size]) as? Int) ?? 0) }
        if let maxBytes = settings.maxBytes, folderBytes + bytes > maxBytes {
            for file in [png, tiff] { try? FileManager.default.removeItem(at: file) }
            return stopAtCap("max_bytes \(maxBytes)")
        }
        folderFrames += 1
        folderBytes += bytes
        condition.lock(); counts.recorded += 1; condition.unlock()
    }

    private func stopAtCap(_ cap: String) {
        condition.lock()
        let first = !counts.capped
        counts.capped = true
        queue.removeAll()
        condition.unlock()
        if first {
            logger.notice("recording stopped: \(cap) reached in \(classDirectory.path) (\(folderFrames) frames, \(folderBytes) bytes)")
        }
    }

    /// The frame's XYZ [H, W, 3] in metres, a pixel with any non-finite coordinate set to (0, 0, 0).
    static func metresWithHolesAsZero(_ frame: Frame) -> Tensor {
        let scale = frame.unit.metres
        var scalars = Array(frame.cloud)
        for p in stride(from: 0, to: scalars.count, by: 3) {
            if scalars[p].isFinite && scalars[p + 1].isFinite && scalars[p + 2].isFinite {
                for c in p..<p + 3 { scalars[c] *= scale }
            } else {
                for c in p..<p + 3 { scalars[c] = 0 }
            }
        }
        return Tensor(shape: [frame.height, frame.width, 3], scalars: scalars)
    }
}
