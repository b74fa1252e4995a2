import CFMGeometry
import CFMTensor
import Foundation
import Testing

/// Release timings of the production sizes, run on demand:
/// `CFM_BENCH=1 swift test -c release --filter GeometryBenchmarks`.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["CFM_BENCH"] != nil), .serialized)
struct GeometryBenchmarks {
    /// Median wall time of `runs` calls, in milliseconds.
    func median(runs: Int = 7, _ body: () throws -> Void) rethrows -> Double {
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

    /// `n` points on a 12 cm part surface 0.5 m from the sensor.
    func part(_ n: Int) -> Tensor {
        var random = SeededRandom(seed: 1)
        return Tensor(shape: [n, 3], scalars: (0..<n).flatMap { _ -> [Float] in
            let x = random.uniform(-0.06, 0.06), y = random.uniform(-0.06, 0.06)
            return [x, y, 0.5 - 0.02 * cos(40 * x) * cos(30 * y)]
        })
    }

    @Test func samplingAndNeighbours() throws {
        for n in [20_000, 50_000] {
            let points = part(n)
            var sample = try farthestPointSampling(points, count: 1024)
            let fps = try median { sample = try farthestPointSampling(points, count: 1024) }
            let knn = try median { _ = try NearestNeighbours(of: sample.centres, in: points, k: 128) }
            let blend = try median { _ = try InverseDistanceInterpolation(points: points, centres: sample.centres) }
            let interpolation = try InverseDistanceInterpolation(points: points, centres: sample.centres)
            let features = Tensor(shape: [1024, 1152], repeating: 1)
            let interpolate = try median { _ = try interpolation.interpolate(features) }
            print(String(format: "N = %d: FPS 1024 %.2f ms, KNN 1024×128 %.2f ms, 3-NN %.2f ms, interpolate D=1152 %.2f ms",
                         n, fps, knn, blend, interpolate))
        }
    }

    @Test func backgroundRemoval() throws {
        let scene = SyntheticScene(size: 800, objects: [(400, 450, 150), (150, 200, 40)])
        var report: BackgroundRemovalReport?
        let time = try median {
            var cloud = scene.cloud
            report = try cloud.removeBackground()
        }
        print(String(format: "800×800 background removal %.2f ms: ", time), report!)
    }
}
