import ArgumentParser
import CFMData
import CFMDetector
import CFMModels
import Foundation

/// The samples of a split of an MVTec 3D-AD class directory (`DATASET/CLASS`), sorted.
func datasetSamples(_ classDirectory: String, _ split: DatasetSplit, nominalOnly: Bool = false) throws -> [DatasetSample] {
    let dataset = try MVTec3DClass(directory: URL(fileURLWithPath: classDirectory))
    let samples = nominalOnly ? try dataset.samples(split, defect: MVTec3DClass.nominal) : try dataset.samples(split)
    guard !samples.isEmpty else {
        throw CommandFailure("\(classDirectory): no \(nominalOnly ? "nominal " : "")samples in the \(split.rawValue) split")
    }
    return samples
}

/// The first `shots` (default: all) nominal training samples of a class directory.
func trainingSamples(_ classDirectory: String, shots: Int?) throws -> [DatasetSample] {
    let samples = try datasetSamples(classDirectory, .train, nominalOnly: true)
    guard let shots else { return samples }
    guard shots <= samples.count else {
        throw CommandFailure("--shots \(shots), but \(classDirectory) has \(samples.count) training samples")
    }
    return Array(samples.prefix(shots))
}

/// The extractor files' checksums, as recorded in manifests and cache keys.
func extractorChecksums(_ directory: URL) throws -> [ModelManifest.FileSum] {
    try [ExtractorFile.vit, ExtractorFile.pointMAE].map { .init(file: $0, checksum: try Checksum.of(directory.appendingPathComponent($0))) }
}

extension Preprocessor {
    /// Loads and preprocesses a dataset sample.
    func callAsFunction(_ sample: DatasetSample, unit: LengthUnit) throws -> (PreprocessedFrame, LoadedSample) {
        let loaded = try sample.load()
        return (try self(rgb: loaded.rgb, cloud: loaded.cloud, unit: unit), loaded)
    }
}
