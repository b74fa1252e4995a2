import CFMGeometry
import CFMTensor
import Foundation
import Testing

/// Release timings of the production sizes, run on demand:
/// `CFM_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter GeometryBenchmarks`.
/// Each line gives the median wall time and the median CPU time (all threads) in ms; on a
/// shared machine the CPU time is the steadier of the two.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["CFM_BENCH"] != nil), .serialized)
struct GeometryBenchmarks {
    /// Median wall and CPU milliseconds of `runs` calls, formatted.
    func measure(runs: Int = 9, _ body: () throws -> Void) rethrows -> String {
        func cpuSeconds() -> Double {
            var usage = rusage()
            getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
            return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
                + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6
        }
        let clock = ContinuousClock()
        var wall: [Double] = [], cpu: [Double] = []
        for _ in 0..<runs {
            let start = clock.now, cpuStart = cpuSeconds()
            try body()
            let elapsed = clock.now - start
            wall.append(Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) * 1e-15)
            cpu.append((cpuSeconds() - cpuStart) * 1e3)
        }
        return String(format: "%.1f ms (cpu %.1f ms)", wall.sorted()[runs / 2], cpu.sorted()[runs / 2])
    }

    /// `n` points of a 12 cm part surface 0.5 m from the sensor, in row-major pixel order
    /// like the foreground points of a frame.
    func part(_ n: Int) -> Tensor {
        var random = SeededRandom(seed: 1)
        let points = (0..<n).map { _ -> SIMD3<Float> in
            let x = random.uniform(-0.06, 0.06), y = random.uniform(-0.06, 0.06)
            return SIMD3(x, y, 0.5 - 0.02 * cos(40 * x) * cos(30 * y))
        }.sorted { ($0.y, $0.x) < ($1.y, $1.x) }
        return Tensor(shape: [n, 3], scalars: points.flatMap { [$0.x, $0.y, $0.z] })
    }

    @Test func samplingAndNeighbours() throws {
        for n in [20_000, 50_000] {
            let points = part(n)
            let sample = try farthestPointSampling(points, count: 1024)
            let fps = try measure { _ = try farthestPointSampling(points, count: 1024) }
            let knn = try measure { _ = try NearestNeighbours(of: sample.centres, in: points, k: 128) }
            let blend = try measure { _ = try InverseDistanceInterpolation(points: points, centres: sample.centres) }
            let interpolation = try InverseDistanceInterpolation(points: points, centres: sample.centres)
            let features = Tensor(shape: [1024, 1152], repeating: 1)
            let interpolate = try measure { _ = try interpolation.interpolate(features) }
            print("N = \(n): FPS 1024 \(fps); KNN 1024×128 \(knn); 3-NN weights \(blend); interpolate D=1152 \(interpolate)")
        }
    }

    @Test func backgroundRemoval() throws {
        let scene = SyntheticScene(size: 800, objects: [(400, 450, 150), (150, 200, 40)])
        var report: BackgroundRemovalReport?
        let time = try measure {
            var cloud = scene.cloud
            report = try cloud.removeBackground()
        }
        print("800×800 background removal \(time): \(report!)")
    }
}
