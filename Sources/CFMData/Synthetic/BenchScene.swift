import CFMTensor
import Foundation

/// A realistic synthetic sensor frame for benchmarks (`cfm bench`, tools/geometry-bench): a
/// pinhole camera 0.5 m above a slightly tilted table, an elliptic dome covering ~40 % of the
/// view (~20 000 foreground points after resizing to 224), 0.2 mm depth noise, a smooth random
/// texture. Any width × height; the same seed gives the same frame.
public enum BenchScene {
    /// RGB [height, width] and XYZ [height, width, 3] in metres.
    public static func make(width: Int, height: Int, seed: UInt64 = 7) -> (rgb: RGBImage, cloud: Tensor) {
        var rng = SeededRandom(seed: seed)
        let (centreX, centreY) = (Float(width) / 2, Float(height) / 2)
        let a = 0.40 * Float(width), b = 0.32 * Float(height), focal = 1.3 * Float(width)
        var cloud = Tensor(shape: [height, width, 3])
        var bytes = [UInt8](repeating: 0, count: height * width * 3)
        let phases = (0..<6).map { _ in rng.uniform(0, 6.28) }
        for v in 0..<height {
            for u in 0..<width {
                let du = (Float(u) + 0.5 - centreX) / a, dv = (Float(v) + 0.5 - centreY) / b
                let r2 = du * du + dv * dv
                let rayX = (Float(u) + 0.5 - centreX) / focal, rayY = (Float(v) + 0.5 - centreY) / focal
                // Table plane z = 0.5 + 0.03·x·… seen along the pixel's ray; the dome rises 4 cm above it.
                let table = 0.5 / (1 - 0.05 * rayX - 0.02 * rayY)
                let z = (r2 < 1 ? table - 0.04 * (1 - r2).squareRoot() : table) + 0.0002 * rng.normal()
                let i = 3 * (v * width + u)
                (cloud.scalars[i], cloud.scalars[i + 1], cloud.scalars[i + 2]) = (rayX * z, rayY * z, z)
                let x = Float(u) / Float(width), y = Float(v) / Float(height)
                for c in 0..<3 {
                    let texture = sin(9 * x + phases[2 * c]) * cos(7 * y + phases[2 * c + 1])
                    bytes[i + c] = UInt8(max(0, min(255, 128 + (r2 < 1 ? 90 : 30) * texture + 6 * rng.normal())))
                }
            }
        }
        return (RGBImage(height: height, width: width, bytes: bytes), cloud)
    }
}
