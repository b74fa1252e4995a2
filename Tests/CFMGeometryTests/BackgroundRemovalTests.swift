@testable import CFMGeometry
import CFMTensor
import Foundation
import Testing

/// A pinhole view of a tilted support plane with noise, missing pixels and disc-shaped
/// objects standing 2–3 cm proud of it.
struct SyntheticScene {
    /// The true plane: tilted 20° about the x axis, 0.5 m from the camera along the optical axis.
    static let normal = SIMD3<Double>(0, sin(20 * Double.pi / 180), -cos(20 * Double.pi / 180))
    static let offset = 0.5 * cos(20 * Double.pi / 180)

    var cloud: OrganizedCloud
    /// Per pixel: −1 no measurement, 0 plane, i ≥ 1 object i.
    var labels: [Int]

    /// A `size`×`size` view (focal length `size` pixels); `objects`: (centre column, centre
    /// row, radius) in pixels.
    init(size n: Int = 160, objects: [(x: Int, y: Int, radius: Int)], seed: UInt64 = 1) {
        let focal = Double(n)
        var random = SeededRandom(seed: seed)
        var coordinates = [Float](repeating: 0, count: n * n * 3)
        labels = [Int](repeating: -1, count: n * n)
        for v in 0..<n {
            for u in 0..<n {
                let i = v * n + u
                if random.uniform() < 0.02 { continue }  // no measurement
                let ray = SIMD3((Double(u) - Double(n) / 2 + 0.5) / focal, (Double(v) - Double(n) / 2 + 0.5) / focal, 1)
                var p = ray * (-Self.offset / (Self.normal * ray).sum())
                labels[i] = 0
                for (k, o) in objects.enumerated() {
                    let r2 = Double((u - o.x) * (u - o.x) + (v - o.y) * (v - o.y)) / Double(o.radius * o.radius)
                    if r2 <= 1 {
                        p += Self.normal * (0.02 + 0.01 * (1 - r2))  // towards the camera
                        labels[i] = k + 1
                    }
                }
                p += Self.normal * Double(random.normal()) * 0.0005
                for a in 0..<3 { coordinates[3 * i + a] = Float(p[a]) }
            }
        }
        cloud = try! OrganizedCloud(height: n, width: n, coordinates: coordinates)
    }

    /// How many pixels with `label` still hold a foreground point, of how many had one.
    func survivors(_ label: Int, in cleaned: OrganizedCloud) -> (kept: Int, total: Int) {
        let pixels = labels.indices.filter { labels[$0] == label }
        return (pixels.filter { cleaned.isForeground(pixel: $0) }.count, pixels.count)
    }
}

@Suite struct BackgroundRemovalTests {
    @Test func removesATiltedNoisyPlaneAndKeepsTheObject() throws {
        let scene = SyntheticScene(objects: [(80, 90, 30)])
        var cloud = scene.cloud
        let report = try cloud.removeBackground()
        let plane = try #require(report.plane)
        let angle = acos(min(1, abs((plane.normal * SyntheticScene.normal).sum()))) * 180 / Double.pi
        #expect(angle < 0.5, "normal off by \(angle)°")
        #expect(abs(abs(plane.offset) - SyntheticScene.offset) < 0.002)
        let (planeKept, planeTotal) = scene.survivors(0, in: cloud)
        let (objectKept, objectTotal) = scene.survivors(1, in: cloud)
        #expect(Double(planeTotal - planeKept) >= 0.995 * Double(planeTotal), "\(planeKept) of \(planeTotal) plane points left")
        #expect(Double(objectKept) >= 0.99 * Double(objectTotal), "\(objectKept) of \(objectTotal) object points kept")
        #expect(report.remaining == cloud.foregroundCount)
        #expect(report.remaining + report.removedByPlane + report.removedByCluster == scene.cloud.foregroundCount)
        #expect(report.borderPoints > 5000 && report.planeInliers > Int(0.99 * Double(report.borderPoints)))
    }

    @Test func keepsOnlyTheLargestObject() throws {
        let scene = SyntheticScene(size: 400, objects: [(125, 150, 38), (275, 250, 70)])
        var cloud = scene.cloud
        let report = try cloud.removeBackground()
        let small = scene.survivors(1, in: cloud), large = scene.survivors(2, in: cloud)
        #expect(small.kept == 0)
        #expect(Double(large.kept) >= 0.99 * Double(large.total))
        #expect(report.removedByCluster >= small.total)
        #expect(report.remaining == large.kept + scene.survivors(0, in: cloud).kept)
    }

    @Test func isDeterministicForASeed() throws {
        let scene = SyntheticScene(objects: [(80, 80, 20)], seed: 9)
        var a = scene.cloud, b = scene.cloud
        #expect(try a.removeBackground() == b.removeBackground())
        #expect(a == b)
    }

    @Test func withoutBorderPointsNothingIsRemoved() throws {
        // An object in the middle of an otherwise empty view.
        var coordinates = [Float](repeating: 0, count: 40 * 40 * 3)
        for y in 12..<28 { for x in 12..<28 { coordinates.replaceSubrange(3 * (y * 40 + x)..<3 * (y * 40 + x) + 3, with: [0.01 * Float(x), 0.01 * Float(y), 0.5]) } }
        let original = try OrganizedCloud(height: 40, width: 40, coordinates: coordinates)
        var cloud = original
        let report = try cloud.removeBackground()
        #expect(!report.planeFound)
        #expect(report == BackgroundRemovalReport(plane: nil, borderPoints: 0, planeInliers: 0, removedByPlane: 0,
                                                  removedByCluster: 0, remaining: 256))
        #expect(cloud == original)
        var empty = try OrganizedCloud(height: 0, width: 0, coordinates: [])
        #expect(try !empty.removeBackground().planeFound)
    }

    @Test func rejectsInvalidOptions() {
        var cloud = try! OrganizedCloud(height: 1, width: 1, coordinates: [1, 1, 1])
        var options = BackgroundRemovalOptions()
        options.sampleSize = 2
        #expect(throws: GeometryError.invalidParameter(name: "sampleSize", value: "2", requirement: "at least 3")) {
            try cloud.removeBackground(options: options)
        }
    }

    @Test func clusterLinksNeedBothGridAndDistance() {
        // Row of 5 pixels: 0–1 close, 1–2 10 mm apart (cut), 2–3–4 close; pixel 5 is empty.
        var cloud = try! OrganizedCloud(height: 1, width: 6, coordinates: [
            0.100, 0.1, 0.5, 0.102, 0.1, 0.5, 0.112, 0.1, 0.5, 0.114, 0.1, 0.5, 0.116, 0.1, 0.5, 0, 0, 0,
        ])
        #expect(cloud.withView { $0.keepLargestCluster(linkDistance: 0.006) } == 2)
        #expect((0..<6).map(cloud.isForeground) == [false, false, true, true, true, false])
    }

    @Test func clusterLinksDiagonalNeighbours() {
        // 3×3 pixels: an anti-diagonal chain of close points, and pixel 0 diagonal to the
        // chain's middle but 1 cm away in depth.
        var coordinates = [Float](repeating: 0, count: 27)
        for (pixel, point) in [(0, [0.1, 0.1, 0.51]), (2, [0.102, 0.1, 0.5]), (4, [0.101, 0.101, 0.5]), (6, [0.1, 0.102, 0.5])] {
            coordinates.replaceSubrange(3 * pixel..<3 * pixel + 3, with: point.map { Float($0) })
        }
        var cloud = try! OrganizedCloud(height: 3, width: 3, coordinates: coordinates)
        #expect(cloud.withView { $0.keepLargestCluster(linkDistance: 0.006) } == 1)
        #expect((0..<9).filter(cloud.isForeground) == [2, 4, 6])
    }

    @Test func eigenSolverDiagonalisesARotatedMatrix() {
        // A = R diag(1, 2, 5) Rᵀ for a rotation R about (1, 1, 1); eigenvalues come back ascending.
        let c = cos(0.7), s = sin(0.7), k = SIMD3<Double>(1, 1, 1) / 3.0.squareRoot()
        func rotate(_ v: SIMD3<Double>) -> SIMD3<Double> {
            let cross = SIMD3(k.y * v.z - k.z * v.y, k.z * v.x - k.x * v.z, k.x * v.y - k.y * v.x)
            return v * c + cross * s + k * ((k * v).sum() * (1 - c))
        }
        let axes = [rotate(SIMD3(1, 0, 0)), rotate(SIMD3(0, 1, 0)), rotate(SIMD3(0, 0, 1))]
        let lambdas = [1.0, 2, 5]
        func entry(_ i: Int, _ j: Int) -> Double { (0..<3).reduce(0) { $0 + lambdas[$1] * axes[$1][i] * axes[$1][j] } }
        let eigen = SymmetricEigen3(xx: entry(0, 0), xy: entry(0, 1), xz: entry(0, 2),
                                    yy: entry(1, 1), yz: entry(1, 2), zz: entry(2, 2))
        for (value, expected) in zip([eigen.values.x, eigen.values.y, eigen.values.z], lambdas) {
            #expect(abs(value - expected) < 1e-12)
        }
        for (vector, axis) in zip([eigen.vectors.0, eigen.vectors.1, eigen.vectors.2], axes) {
            #expect(abs(abs((vector * axis).sum()) - 1) < 1e-12)
        }
    }
}
