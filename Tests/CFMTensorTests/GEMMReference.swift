/// The fp64 reference the GEMM kernels' tests compare with: row `i` of `a` [m, k] times row `j`
/// of `w` [n, k], summed in Float64, and the sum of its products' magnitudes.
func fp64Product(_ a: [Float], _ w: [Float], row i: Int, column j: Int, k: Int) -> (sum: Double, magnitude: Double) {
    var sum = 0.0, magnitude = 0.0
    for p in 0..<k {
        let product = Double(a[i * k + p]) * Double(w[j * k + p])
        sum += product
        magnitude += abs(product)
    }
    return (sum, magnitude)
}

/// The error bound of an fp32 sum of k products plus `addends` (a bias, a residual), in any
/// order: (k + 2)·ε·(Σ|products| + Σ|addends|); tests divide each error by it and expect ≤ 1.
func fp32AccumulationBound(k: Int, magnitude: Double, addends: [Double]) -> Double {
    max(Double(k + 2) * Double(Float.ulpOfOne) * (magnitude + addends.reduce(0) { $0 + abs($1) }), .leastNormalMagnitude)
}
