import CFMDetector
import CFMTensor
import Foundation

/// A realistic synthetic model input for benchmarks: an elliptic dome covering ~40 % of a
/// size×size view (~20 000 foreground points at 224) seen by a pinhole camera at 0.5 m,
/// background already removed, with a smooth random texture.
enum BenchFrame {
    static func make(size: Int, seed: UInt64 = 7) -> ModelInput {
        var rng = SeededRandom(seed: seed)
        let centre = Float(size) / 2, a = 0.40 * Float(size), b = 0.32 * Float(size), focal = 1.3 * Float(size)
        var xyz = Tensor(shape: [size, size, 3])
        for v in 0..<size {
            for u in 0..<size {
                let du = (Float(u) + 0.5 - centre) / a, dv = (Float(v) + 0.5 - centre) / b
                let r2 = du * du + dv * dv
                guard r2 < 1 else { continue }
                let z = 0.5 - 0.04 * (1 - r2).squareRoot() + 0.0002 * rng.normal()
                let i = 3 * (v * size + u)
                xyz.scalars[i] = (Float(u) + 0.5 - centre) * z / focal
                xyz.scalars[i + 1] = (Float(v) + 0.5 - centre) * z / focal
                xyz.scalars[i + 2] = z
            }
        }
        let phases = (0..<6).map { _ in rng.uniform(0, 6.28) }
        var rgb = Tensor(shape: [3, size, size])
        for c in 0..<3 {
            for p in 0..<(size * size) {
                let x = Float(p % size) / Float(size), y = Float(p / size) / Float(size)
                rgb.scalars[c * size * size + p] = sin(9 * x + phases[2 * c]) * cos(7 * y + phases[2 * c + 1]) + 0.1 * rng.normal()
            }
        }
        return ModelInput(rgb: rgb, xyz: xyz)
    }
}
