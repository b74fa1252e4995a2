import CFMTensor
import Foundation

/// The object classes of the synthetic dataset, each with its own geometry, texture and
/// crossmodal cue (see `SyntheticCookie`, `SyntheticBox`, `SyntheticGland`).
public enum SyntheticClass: String, CaseIterable, Sendable {
    case cookie, box, gland
}

/// What a synthetic sample shows: a nominal part or one of the four test defect types.
public enum SyntheticDefectType: String, CaseIterable, Sendable {
    /// Nominal.
    case good
    /// RGB only: stains and scratches; the geometry is nominal.
    case color
    /// 3D only: dents, bumps and grooves with the nominal texture.
    case shape
    /// Both: burnt dents, discoloured cracks, stained bumps.
    case combined
    /// Each modality alone looks nominal, their pairing does not (a cookie chip that is raised
    /// but not dark or dark but flat; print on a curved area of the box or the gland).
    case crossmodal
}

/// A synthetic dataset in the MVTec 3D-AD layout that makes the method's point: RGB-only,
/// 3D-only, combined and crossmodal defects on three classes of parts lying on a tilted table,
/// seen by a pinhole RGB + XYZ sensor from above (see `SyntheticScene`).
///
/// Everything derives from the seed: the same options give byte-identical files, and a class's
/// samples do not depend on which other classes are generated.
public enum SyntheticDataset {
    public struct Options: Sendable {
        /// Image width and height in pixels; at 400 (the default) the part stays ≥ 25 pixels clear
        /// of the image border, so the 10-pixel border ring sees only the table.
        public var size: Int
        public var seed: UInt64
        public var classes: [SyntheticClass]
        public var trainCount: Int
        public var validationCount: Int
        /// Samples per test folder (`good` and each defect type).
        public var testCountPerType: Int

        public init(size: Int = 400, seed: UInt64 = 0, classes: [SyntheticClass] = SyntheticClass.allCases,
                    trainCount: Int = 20, validationCount: Int = 8, testCountPerType: Int = 6) {
            self.size = size
            self.seed = seed
            self.classes = classes
            self.trainCount = trainCount
            self.validationCount = validationCount
            self.testCountPerType = testCountPerType
        }
    }

    /// Renders one sample. The scene, pose and part depend only on `seed`, the defects on
    /// `seed` and `type`: a defective sample and the `good` one of the same seed differ only
    /// where the defects are.
    public static func render(_ partClass: SyntheticClass, _ type: SyntheticDefectType, seed: UInt64, size: Int) -> SyntheticSample {
        switch partClass {
        case .cookie: render(SyntheticCookie.self, type, seed: seed, size: size)
        case .box: render(SyntheticBox.self, type, seed: seed, size: size)
        case .gland: render(SyntheticGland.self, type, seed: seed, size: size)
        }
    }

    private static func render<Part: SyntheticPart>(_ partType: Part.Type, _ type: SyntheticDefectType,
                                                    seed: UInt64, size: Int) -> SyntheticSample {
        var random = SeededRandom(seed: mixSeed(seed, nameSeed("scene")))
        let scene = SyntheticScene(size: size, yaw: Part.yawRange, using: &random)
        var part = DefectivePart(part: Part(scale: random.uniform(0.95, 1.05), using: &random))
        random = SeededRandom(seed: mixSeed(seed, nameSeed(type.rawValue)))
        switch type {
        case .good: break
        case .color: for _ in 0..<random.integer(1...2) { part.addDefect(using: &random, SurfaceDefect.color) }
        case .shape: for _ in 0..<random.integer(1...2) { part.addDefect(using: &random, SurfaceDefect.shape) }
        case .combined: part.addDefect(using: &random, SurfaceDefect.combined)
        case .crossmodal: part.defects.append(SurfaceDefect(region: part.part.addCrossmodalDefect(using: &random)))
        }
        return scene.render(part)
    }

    /// One sample to write: its folder and file stem, and its seed.
    private struct Job {
        let partClass: SyntheticClass, split: DatasetSplit, type: SyntheticDefectType, index: Int
        let seed: UInt64
        var folder: String { "\(partClass.rawValue)/\(split.rawValue)/\(type.rawValue)" }
        var stem: String { String(format: "%03d", index) }
    }

    /// Writes the dataset into `directory`: `CLASS/{train,validation}/good/{rgb,xyz}/NNN.{png,tiff}`,
    /// `CLASS/test/<type>/{rgb,xyz,gt}/NNN.{png,tiff,png}` and `synth.json` (the options).
    /// Returns the number of samples written.
    @discardableResult
    public static func generate(_ options: Options, to directory: URL) throws(ImageFileError) -> Int {
        var jobs = [Job]()
        for partClass in options.classes {
            let splits: [(DatasetSplit, SyntheticDefectType, Int)] =
                [(.train, .good, options.trainCount), (.validation, .good, options.validationCount)]
                + SyntheticDefectType.allCases.map { (.test, $0, options.testCountPerType) }
            for (split, type, count) in splits {
                for index in 0..<count {
                    let seed = mixSeed(options.seed, nameSeed(partClass.rawValue), nameSeed(split.rawValue),
                                       nameSeed(type.rawValue), UInt64(index))
                    jobs.append(Job(partClass: partClass, split: split, type: type, index: index, seed: seed))
                }
            }
        }
        for folder in Set(jobs.map(\.folder)).sorted() {
            for kind in folder.contains("/test/") ? ["rgb", "xyz", "gt"] : ["rgb", "xyz"] {
                try createDirectory(directory.appendingPathComponent(folder).appendingPathComponent(kind))
            }
        }
        // Each core takes every cpuCount-th job (rendering and PNG compression both take time).
        var failures = [ImageFileError?](repeating: nil, count: cpuCount)
        failures.withUnsafeMutableBufferPointer { failures in
            parallelChunks(cpuCount, minimumChunk: 1) { workers in
                for worker in workers {
                    do throws(ImageFileError) {
                        for job in stride(from: worker, to: jobs.count, by: cpuCount) {
                            try write(jobs[job], size: options.size, into: directory)
                        }
                    } catch {
                        failures[worker] = error
                    }
                }
            }
        }
        if let failure = failures.compactMap({ $0 }).first { throw failure }
        try writeManifest(options, to: directory.appendingPathComponent("synth.json"))
        return jobs.count
    }

    private static func write(_ job: Job, size: Int, into directory: URL) throws(ImageFileError) {
        let folder = directory.appendingPathComponent(job.folder)
        let sample = render(job.partClass, job.type, seed: job.seed, size: size)
        try PNGFile.write(sample.rgb, to: folder.appendingPathComponent("rgb/\(job.stem).png"), compression: .fast)
        try TIFFFile.write(sample.cloud, to: folder.appendingPathComponent("xyz/\(job.stem).tiff"))
        if job.split == .test { try PNGFile.write(sample.mask, to: folder.appendingPathComponent("gt/\(job.stem).png")) }
    }

    static func createDirectory(_ url: URL) throws(ImageFileError) {
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw .unwritable(file: url.path, reason: (error as NSError).localizedDescription)
        }
    }

    /// The options that reproduce the dataset, as JSON.
    private static func writeManifest(_ options: Options, to url: URL) throws(ImageFileError) {
        let classes = options.classes.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
        let json = """
            {"generator": "cfm synth", "seed": \(options.seed), "size": \(options.size), "classes": [\(classes)], \
            "train": \(options.trainCount), "validation": \(options.validationCount), "test_per_type": \(options.testCountPerType)}

            """
        do {
            try Data(json.utf8).write(to: url, options: .atomic)
        } catch {
            throw .unwritable(file: url.path, reason: (error as NSError).localizedDescription)
        }
    }
}
