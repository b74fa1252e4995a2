/// An axis-aligned box in Float32 coordinates (empty until a point is included).
struct BoundingBox {
    var lower = SIMD3<Float>(repeating: .infinity)
    var upper = SIMD3<Float>(repeating: -.infinity)

    mutating func include(_ point: SIMD3<Float>) {
        lower = pointwiseMin(lower, point)
        upper = pointwiseMax(upper, point)
    }

    /// The smallest squared distance between a point of this box and a point of `other`,
    /// in Float64 (a lower bound for every pair of points the two boxes hold).
    func squaredDistance(to other: BoundingBox) -> Double {
        var total = 0.0
        for axis in 0..<3 {
            let gap = max(0, Double(other.lower[axis]) - Double(upper[axis]), Double(lower[axis]) - Double(other.upper[axis]))
            total += gap * gap
        }
        return total
    }
}
