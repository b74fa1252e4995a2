/// A plane n·p + d = 0 in the camera frame: unit normal n, offset d in metres. The normal
/// faces the sensor (n · (origin − p) ≥ 0 for points p on the plane, i.e. d ≥ 0).
public struct Plane: Sendable, Equatable {
    public let normal: SIMD3<Double>
    public let offset: Double

    /// Orients `normal` (made unit length) towards the sensor origin.
    public init(normal: SIMD3<Double>, offset: Double) {
        let unit = normal / (normal * normal).sum().squareRoot()
        (self.normal, self.offset) = offset < 0 ? (-unit, -offset) : (unit, offset)
    }

    /// Signed distance of `point` to the plane in metres, positive on the sensor's side.
    public func signedDistance(_ point: SIMD3<Double>) -> Double {
        (normal * point).sum() + offset
    }

    /// The least-squares plane through `count` points (≥ 3): through their centroid, normal
    /// along the smallest-eigenvalue eigenvector of their covariance (Float64).
    static func leastSquares(count: Int, point: (Int) -> SIMD3<Double>) -> Plane {
        precondition(count >= 3, "a plane needs 3 points, got \(count)")
        var centroid = SIMD3<Double>.zero
        for i in 0..<count { centroid += point(i) }
        centroid /= Double(count)
        var xx = 0.0, xy = 0.0, xz = 0.0, yy = 0.0, yz = 0.0, zz = 0.0
        for i in 0..<count {
            let p = point(i) - centroid
            xx += p.x * p.x; xy += p.x * p.y; xz += p.x * p.z
            yy += p.y * p.y; yz += p.y * p.z; zz += p.z * p.z
        }
        let normal = SymmetricEigen3(xx: xx, xy: xy, xz: xz, yy: yy, yz: yz, zz: zz).vectors.0
        return Plane(normal: normal, offset: -(normal * centroid).sum())
    }
}
