@testable import CFMGeometry
import CFMTensor
import CFMTestSupport
import Foundation
import Testing

/// DBSCAN against Open3D's `cluster_dbscan(eps=0.006, min_points=30)` on `cfm synth` parts
/// after plane removal (`Tests/Fixtures/dbscan.safetensors`, `tools/reference/make_dbscan_fixtures.py`),
/// and hand-made cases of the definition.
@Suite struct DensityClustersTests {
    static let fixtures = try! Fixtures.open("dbscan.safetensors")
    static let cases = fixtures.entries.keys.filter { $0.hasSuffix(".points") }.map { String($0.dropLast(".points".count)) }.sorted()

    @Test(arguments: cases)
    func labelsEqualOpen3D(name: String) throws {
        let points = try Self.fixtures.tensor("\(name).points")
        let expected = try Self.fixtures.tensor("\(name).labels").scalars.map { Int32($0) }
        let clusters = try DensityClusters(points: points, eps: 0.006, minPoints: 30)
        let differing = zip(clusters.labels, expected).filter { $0 != $1 }.count
        #expect(differing == 0, "\(name): \(differing) of \(expected.count) labels differ")
        #expect(clusters.clusterCount == Int(expected.max() ?? -1) + 1)
        // The kept group is the same set of points as NumPy's unique/argmax picks.
        var counts = [Int32: Int]()
        for label in expected { counts[label, default: 0] += 1 }
        let kept = counts.keys.sorted().max { counts[$0]! < counts[$1]! || (counts[$0]! == counts[$1]! && $0 > $1) }
        #expect(clusters.keptLabel == kept)
        print("\(name): \(expected.count) points, \(clusters.clusterCount) clusters, "
              + "\(expected.filter { $0 < 0 }.count) noise, kept \(kept.map { counts[$0]! } ?? 0)")
    }

    /// Points on the x axis at the given positions (metres).
    static func line(_ xs: [Float]) -> Tensor {
        Tensor(shape: [xs.count, 3], scalars: xs.flatMap { [$0, 0.25, 0.5] })
    }

    @Test func neighboursIncludeThePointItselfAndAreStrictlyCloserThanEps() throws {
        // Two points 0.5 apart: neighbours only when eps > 0.5; each counts itself.
        let pair = Self.line([0, 0.5])
        #expect(try DensityClusters(points: pair, eps: 0.5, minPoints: 2).labels == [-1, -1])
        #expect(try DensityClusters(points: pair, eps: 0.5000001, minPoints: 2).labels == [0, 0])
        #expect(try DensityClusters(points: Self.line([0]), eps: 0.1, minPoints: 1).labels == [0])
    }

    @Test func borderPointsJoinTheFirstClusterThatReachesThem() throws {
        // Cores at 0 and 2 (each with three close partners), a border point at 1 within eps of
        // both; it belongs to the cluster of the smaller first index, whatever its own index.
        let a: [Float] = [0, -0.01, -0.02, -0.03], b: [Float] = [2, 2.01, 2.02, 2.03]
        let bFirst = try DensityClusters(points: Self.line([1] + b + a), eps: 1.0001, minPoints: 4)
        #expect(bFirst.labels == [0, 0, 0, 0, 0, 1, 1, 1, 1])
        let aFirst = try DensityClusters(points: Self.line(a + b + [1]), eps: 1.0001, minPoints: 4)
        #expect(aFirst.labels == [0, 0, 0, 0, 1, 1, 1, 1, 0])
        #expect(aFirst.clusterCount == 2)
    }

    @Test func keptLabelCountsNoiseAsAGroup() throws {
        // Three scattered points (noise) outnumber a two-point cluster: the noise is kept, as
        // NumPy's unique/argmax over the labels picks it.
        let clusters = try DensityClusters(points: Self.line([0, 0.001, 1, 2, 3]), eps: 0.01, minPoints: 2)
        #expect(clusters.labels == [0, 0, -1, -1, -1])
        #expect(clusters.keptLabel == -1)
        #expect(try DensityClusters(points: Self.line([]), eps: 0.01, minPoints: 2).keptLabel == nil)
    }

    @Test func hugeAndNonFiniteCoordinatesAreNoiseWithoutTrapping() throws {
        let points = Tensor(shape: [4, 3], scalars: [0.1, 0.1, 0.5, 0.1, 0.1, 0.5, 3e38, -3e38, 1, .nan, 1, .infinity])
        #expect(try DensityClusters(points: points, eps: 0.006, minPoints: 2).labels == [0, 0, -1, -1])
    }

    @Test func rejectsInvalidParameters() {
        #expect(throws: GeometryError.self) { try DensityClusters(points: Self.line([0]), eps: 0, minPoints: 1) }
        #expect(throws: GeometryError.self) { try DensityClusters(points: Self.line([0]), eps: 0.1, minPoints: 0) }
    }

    @Test func backgroundRemovalSelectsTheCleaning() throws {
        // Two discs 2–3 cm proud of the plane at 1.25 mm pixels (DBSCAN's eps then holds ~70
        // points, above min_points): both rules keep the bigger one.
        let scene = SyntheticScene(size: 400, objects: [(125, 150, 38), (275, 250, 70)])
        for cleaning in ClusterCleaning.allCases {
            var options = BackgroundRemovalOptions()
            options.clusterCleaning = cleaning
            var cloud = scene.cloud
            let report = try cloud.removeBackground(options: options)
            #expect(scene.survivors(1, in: cloud).kept == 0, "\(cleaning)")
            #expect(Double(scene.survivors(2, in: cloud).kept) >= 0.99 * Double(scene.survivors(2, in: cloud).total), "\(cleaning)")
            #expect(report.remaining == cloud.foregroundCount)
        }
    }
}
