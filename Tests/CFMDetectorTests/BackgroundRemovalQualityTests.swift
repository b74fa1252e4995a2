import CFMData
import CFMGeometry
import CFMTensor
import Foundation
import Testing

/// Background removal on `cfm synth` frames against their ground truth: the fitted
/// plane's normal within 0.5° of the true table normal, ≥ 99.5 % of table points removed and
/// ≥ 99 % of object points kept, for every class, nominal and defective parts.
@Suite struct BackgroundRemovalQualityTests {
    @Test(arguments: SyntheticClass.allCases)
    func planeAndClusterRemovalOnSyntheticParts(partClass: SyntheticClass) throws {
        for (type, seed) in [(SyntheticDefectType.good, UInt64(11)), (.combined, 13)] {
            let sample = SyntheticDataset.render(partClass, type, seed: seed, size: 300)
            var cloud = try OrganizedCloud(sample.cloud)
            let before = (0..<cloud.pixelCount).map(cloud.isForeground)
            let report = try cloud.removeBackground()
            let plane = try #require(report.plane)
            let n = SIMD3<Double>(Double(sample.tableNormal.x), Double(sample.tableNormal.y), Double(sample.tableNormal.z))
            let angle = acos(min(1, abs((plane.normal * n).sum()))) * 180 / .pi
            var table = (total: 0, removed: 0), object = (total: 0, kept: 0)
            for p in 0..<cloud.pixelCount where before[p] {
                if sample.objectMask.bytes[p] == 0 {
                    table.total += 1
                    if !cloud.isForeground(pixel: p) { table.removed += 1 }
                } else {
                    object.total += 1
                    if cloud.isForeground(pixel: p) { object.kept += 1 }
                }
            }
            let removed = Double(table.removed) / Double(table.total), kept = Double(object.kept) / Double(object.total)
            print(String(format: "background removal %@ %@: normal error %.3f°, table removed %.4f, object kept %.4f",
                         partClass.rawValue, type.rawValue, angle, removed, kept))
            #expect(angle < 0.5, "\(partClass) \(type): normal off by \(angle)°")
            #expect(removed >= 0.995, "\(partClass) \(type): \(removed) of the table removed")
            #expect(kept >= 0.99, "\(partClass) \(type): \(kept) of the object kept")
        }
    }
}
