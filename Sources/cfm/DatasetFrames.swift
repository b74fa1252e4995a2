import CFMData
import CFMJobs
import Foundation

/// The samples of a split of an MVTec 3D-AD class directory (`DATASET/CLASS`), sorted.
func datasetSamples(_ classDirectory: String, _ split: DatasetSplit, nominalOnly: Bool = false) throws -> [DatasetSample] {
    try CFMJobs.datasetSamples(URL(fileURLWithPath: classDirectory), split, nominalOnly: nominalOnly)
}
