import CFMData
@testable import CFMGeometry
import CFMTensor
import Foundation
import Testing

/// Release timings of DBSCAN cluster cleaning on 800×800 `cfm synth` frames, run on demand:
/// `CFM_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter DensityClusteringBenchmarks`.
/// Per class: the foreground points left after plane removal, the DBSCAN alone, and the whole
/// background removal with each cleaning rule (median wall time of 5 runs).
@Suite(.enabled(if: ProcessInfo.processInfo.environment["CFM_BENCH"] != nil), .serialized)
struct DensityClusteringBenchmarks {
    func medianMilliseconds(runs: Int = 5, _ body: () throws -> Void) rethrows -> Double {
        let clock = ContinuousClock()
        var times: [Double] = []
        for _ in 0..<runs {
            let start = clock.now
            try body()
            let elapsed = clock.now - start
            times.append(Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) * 1e-15)
        }
        return times.sorted()[runs / 2]
    }

    @Test(arguments: SyntheticClass.allCases)
    func dbscanOnSensorFrames(partClass: SyntheticClass) throws {
        let sample = SyntheticDataset.render(partClass, .good, seed: 11, size: 800)
        let frame = try OrganizedCloud(sample.cloud)
        var planeless = frame
        var options = BackgroundRemovalOptions()
        options.clusterCleaning = .pixelNeighbours
        let plane = try #require(try planeless.removeBackground(options: options).plane)
        planeless = frame
        _ = planeless.withView { $0.clearPoints(near: plane, distance: options.planeDistance) }
        let points = ForegroundPoints(of: planeless)
        let dbscan = medianMilliseconds {
            _ = points.points.withUnsafeBufferPointer { DensityClusters(points: $0, count: points.count, eps: 0.006, minPoints: 30) }
        }
        var times: [ClusterCleaning: Double] = [:]
        for cleaning in ClusterCleaning.allCases {
            options.clusterCleaning = cleaning
            times[cleaning] = try medianMilliseconds {
                var cloud = frame
                _ = try cloud.removeBackground(options: options)
            }
        }
        print(String(format: "%@ 800×800: %d points after plane removal; DBSCAN %.1f ms; background removal %.1f ms (dbscan), %.1f ms (pixel_neighbours) on %d cores",
                     partClass.rawValue, points.count, dbscan, times[.dbscan]!, times[.pixelNeighbours]!, cpuCount))
    }
}
