/// Eigen-decomposition of a real symmetric 3×3 matrix by cyclic Jacobi rotations, in
/// Float64 — small, branch-light and accurate to a few ulps for the covariance matrices of
/// plane fitting.
struct SymmetricEigen3 {
    /// Eigenvalues, ascending.
    let values: SIMD3<Double>
    /// Unit eigenvectors; `vectors[i]` belongs to `values[i]`.
    let vectors: (SIMD3<Double>, SIMD3<Double>, SIMD3<Double>)

    /// Decomposes the symmetric matrix with upper triangle (xx, xy, xz, yy, yz, zz).
    init(xx: Double, xy: Double, xz: Double, yy: Double, yz: Double, zz: Double) {
        // Row-major 3×3 matrices in the first 9 lanes (a SIMD value: no heap storage).
        var a = SIMD16<Double>(), v = SIMD16<Double>()
        (a[0], a[1], a[2], a[4], a[5], a[8]) = (xx, xy, xz, yy, yz, zz)
        (a[3], a[6], a[7]) = (xy, xz, yz)
        (v[0], v[4], v[8]) = (1, 1, 1)
        let scale = (0..<9).reduce(0) { $0 + a[$1] * a[$1] }
        for _ in 0..<64 {
            let off = a[1] * a[1] + a[2] * a[2] + a[5] * a[5]
            if off <= scale * 0x1p-104 { break }
            for pair in 0..<3 {
                let (p, q) = pair == 2 ? (1, 2) : (0, pair + 1)
                let apq = a[3 * p + q]
                if apq == 0 { continue }
                // The rotation J(p, q, θ) that zeroes a[p][q]: t = tan θ, the smaller root.
                let theta = (a[3 * q + q] - a[3 * p + p]) / (2 * apq)
                let t = abs(theta) > 0x1p500 ? 1 / (2 * theta)
                    : (theta < 0 ? -1 : 1) / (abs(theta) + (theta * theta + 1).squareRoot())
                let c = 1 / (t * t + 1).squareRoot(), s = t * c
                let r = 3 - p - q  // the third index
                let arp = a[3 * r + p], arq = a[3 * r + q]
                a[3 * r + p] = c * arp - s * arq
                a[3 * p + r] = a[3 * r + p]
                a[3 * r + q] = s * arp + c * arq
                a[3 * q + r] = a[3 * r + q]
                a[3 * p + p] -= t * apq
                a[3 * q + q] += t * apq
                a[3 * p + q] = 0
                a[3 * q + p] = 0
                for row in 0..<3 {
                    let vrp = v[3 * row + p], vrq = v[3 * row + q]
                    v[3 * row + p] = c * vrp - s * vrq
                    v[3 * row + q] = s * vrp + c * vrq
                }
            }
        }
        func column(_ j: Int) -> SIMD3<Double> {
            let c = SIMD3(v[j], v[3 + j], v[6 + j])
            return c / (c * c).sum().squareRoot()
        }
        let order = [0, 1, 2].sorted { a[4 * $0] < a[4 * $1] }
        values = SIMD3(a[4 * order[0]], a[4 * order[1]], a[4 * order[2]])
        vectors = (column(order[0]), column(order[1]), column(order[2]))
    }
}
