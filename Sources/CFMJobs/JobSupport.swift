import CFMData
import CFMDetector
import Foundation

/// Why a job stopped: a one-line reason naming what was wrong.
public struct JobError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One step of a long job, for a progress display: `done` of `total` in `phase`
/// (`features`, `train`, `calibrate`, `eval`, `baseline`), with a short status text.
public struct JobProgress: Sendable {
    public var phase: String, done: Int, total: Int, status: String
}

/// Receives a job's progress; nil = silent.
public typealias ProgressHandler = (JobProgress) -> Void

/// The samples of one split of an MVTec 3D-AD class directory, sorted; refuses an empty split.
public func datasetSamples(_ classDirectory: URL, _ split: DatasetSplit, nominalOnly: Bool = false) throws -> [DatasetSample] {
    let dataset = try MVTec3DClass(directory: classDirectory)
    let samples = nominalOnly ? try dataset.samples(split, defect: MVTec3DClass.nominal) : try dataset.samples(split)
    guard !samples.isEmpty else {
        throw JobError("\(classDirectory.relativePath): no \(nominalOnly ? "nominal " : "")samples in the \(split.rawValue) split")
    }
    return samples
}

/// The nominal training samples of a class directory that `SampleDraw` selects (sorted by
/// stem), and the record of the draw.
public func selectTrainingSamples(_ classDirectory: URL, shots: Int?, rule: ShotSelection = .random, holdOut: Int = 0,
                                  seed: UInt64) throws -> ([DatasetSample], ModelManifest.SampleSelection) {
    let all = try datasetSamples(classDirectory, .train, nominalOnly: true)
    let selection = try SampleDraw.select(ids: all.map(\.id), shots: shots, rule: rule, holdOut: holdOut, seed: seed,
                                          source: classDirectory.relativePath)
    let chosen = Set(selection.sampleIDs)
    return (all.filter { chosen.contains($0.id) }, selection)
}

extension Preprocessor {
    /// Loads and preprocesses a dataset sample.
    public func callAsFunction(_ sample: DatasetSample, unit: LengthUnit) throws -> (PreprocessedFrame, LoadedSample) {
        let loaded = try sample.load()
        return (try self(rgb: loaded.rgb, cloud: loaded.cloud, unit: unit), loaded)
    }
}

/// The class name of a class directory (its last path component).
func className(of classDirectory: URL) -> String { classDirectory.standardizedFileURL.lastPathComponent }
