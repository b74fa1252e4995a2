import CFMTensor
import Foundation
import Testing

/// The vector kernels (`Sources/CVectorMath`) against straightforward Float64 references, on
/// sizes around the 16-lane width (tails of every length) and on each build this CPU runs:
/// the portable one always, the AVX-512 one where the CPU has it — and the two must agree bit
/// for bit, since they do the same operations in the same order.
@Suite struct VectorMathTests {
    /// The builds to check on this machine.
    static let paths = VectorPath.allCases.filter { $0 == .portable || CPUFeatures.current.avx512 }
    /// Lengths around multiples of 16, plus the transformers' widths and token counts.
    static let sizes = [1, 2, 7, 15, 16, 17, 31, 33, 64, 100, 384, 785, 1025]

    static func randomValues(_ count: Int, seed: UInt64, scale: Float = 4) -> [Float] {
        var random = SeededRandom(seed: seed)
        return (0..<count).map { _ in random.uniform(-scale, scale) }
    }

    /// Runs `kernel` on a copy of `input` for every path; expects identical results and returns one.
    static func samePerPath(_ input: [Float], _ kernel: (inout [Float], VectorPath) -> Void) -> [Float] {
        let results = paths.map { path in
            var x = input
            kernel(&x, path)
            return x
        }
        for result in results.dropFirst() {
            #expect(zip(result, results[0]).allSatisfy { $0.bitPattern == $1.bitPattern }, "builds disagree")
        }
        return results[0]
    }

    @Test func currentPathFollowsTheCPU() {
        #expect(VectorPath.current == (CPUFeatures.current.avx512 ? .avx512 : .portable))
        #expect(CPUFeatures(cpuinfo: "flags\t: fpu sse2 avx2 fma").avx512 == false)
        #expect(CPUFeatures(cpuinfo: "flags\t: sse2 avx512f avx512dq avx512bw avx512vl").avx512)
    }

    @Test(arguments: sizes) func softmaxMatchesFloat64(cols: Int) {
        let rows = 3, ld = cols + 5  // strided rows: the gaps stay untouched
        var input = Self.randomValues(rows * ld, seed: UInt64(cols), scale: 20)
        input[ld - 1] = 12345  // a gap value
        let output = Self.samePerPath(input) { x, path in softmaxRowsInPlace(&x, rows: rows, cols: cols, ld: ld, path: path) }
        for r in 0..<rows {
            let row = input[(r * ld)..<(r * ld + cols)].map(Double.init)
            let top = row.max()!, e = row.map { exp($0 - top) }, total = e.reduce(0, +)
            for j in 0..<cols {
                // Relative: a few ulp, plus the float rounding of x − max (half an ulp of it).
                let got = Double(output[r * ld + j]), want = e[j] / total
                let bound = want * (4e-7 + 6e-8 * (top - row[j])) + 1e-37
                #expect(abs(got - want) <= bound, "row \(r) col \(j): \(got) vs \(want)")
            }
            for j in cols..<ld { #expect(output[r * ld + j].bitPattern == input[r * ld + j].bitPattern) }
        }
    }

    @Test func softmaxOfInfiniteAndHugeLogits() {
        // −∞ gives exactly 0; huge logits do not overflow (the maximum is subtracted first).
        let cols = 19
        var row = [Float](repeating: -.infinity, count: cols)
        row[3] = 1e30; row[17] = 1e30; row[18] = 1e30 - 1e24
        let output = Self.samePerPath(row) { x, path in softmaxRowsInPlace(&x, rows: 1, cols: cols, path: path) }
        #expect(output[3] == 0.5 && output[17] == 0.5)
        #expect(output.enumerated().allSatisfy { [3, 17].contains($0.offset) || $0.element == 0 })
        // Differences beyond −87.3 give exactly 0, never a subnormal.
        let wide: [Float] = [0, -87.2, -87.4, -500, 88]
        let w = Self.samePerPath(wide) { x, path in softmaxRowsInPlace(&x, rows: 1, cols: 5, path: path) }
        #expect(w[3] == 0 && w[2] == 0 && w[1] == 0 && w.allSatisfy { $0 == 0 || $0.isNormal })
        #expect(abs(w[4] - 1) < 1e-7)
    }

    @Test(arguments: sizes) func geluMatchesFloat64AndTheScalarForm(count: Int) {
        var input = Self.randomValues(count, seed: 100 + UInt64(count), scale: 6)
        if count > 2 { input[0] = -30; input[1] = 30 }
        let output = Self.samePerPath(input) { x, path in geluInPlace(&x, count: count, path: path) }
        for (x, y) in zip(input, output) {
            let want = 0.5 * Double(x) * (1 + erf(Double(x) / 2.0.squareRoot()))
            #expect(abs(Double(y) - want) < 1e-6 * max(1, abs(want)), "gelu(\(x)) = \(y), want \(want)")
            // The same formula as the one-value `errorFunction`/`exponential`, to the bit.
            #expect(y.bitPattern == (0.5 * x * (1 + errorFunction(x * 0.70710678118654752))).bitPattern)
        }
    }

    @Test(arguments: sizes) func layerNormMatchesFloat64(dim: Int) {
        let rows = 4
        let x = Self.randomValues(rows * dim, seed: 200 + UInt64(dim)).map { $0 + 3 }  // an offset mean
        let weight = Self.randomValues(dim, seed: 300 + UInt64(dim)), bias = Self.randomValues(dim, seed: 400 + UInt64(dim))
        // In place (x and y the same buffer), as the transformer blocks may call it.
        let output = Self.samePerPath(x) { y, path in
            y.withUnsafeMutableBufferPointer { y in
                layerNorm(rows: rows, dim: dim, x: y.baseAddress!, weight: weight, bias: bias, eps: 1e-6, y: y.baseAddress!, path: path)
            }
        }
        for r in 0..<rows {
            let row = x[(r * dim)..<((r + 1) * dim)].map(Double.init)
            let mean = row.reduce(0, +) / Double(dim)
            let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(dim)
            for j in 0..<dim {
                let want = (row[j] - mean) / (variance + 1e-6).squareRoot() * Double(weight[j]) + Double(bias[j])
                #expect(abs(Double(output[r * dim + j]) - want) < 1e-5 * max(1, abs(want)), "row \(r) col \(j)")
            }
        }
    }

    @Test(arguments: sizes) func reductionsMatchFloat64(count: Int) {
        let a = Self.randomValues(count, seed: 500 + UInt64(count)), b = Self.randomValues(count, seed: 600 + UInt64(count))
        let zero = [Float](repeating: 0, count: count)
        let (da, db) = (a.map(Double.init), b.map(Double.init))
        let (na, nb) = (da.reduce(0) { $0 + $1 * $1 }.squareRoot(), db.reduce(0) { $0 + $1 * $1 }.squareRoot())
        let want = zip(da, db).reduce(0) { $0 + ($1.0 / na - $1.1 / nb) * ($1.0 / na - $1.1 / nb) }.squareRoot()
        let wantSum = da.reduce(0, +)
        var distances: [Float] = [], sums: [Float] = [], fromZero: [Float] = []
        for path in Self.paths {
            distances.append(normalizedDistance(a, b, count: count, path: path))
            fromZero.append(normalizedDistance(zero, b, count: count, path: path))
            sums.append(sum(a, count: count, path: path))
        }
        for values in [distances, sums, fromZero] { #expect(Set(values.map(\.bitPattern)).count == 1, "builds disagree") }
        #expect(abs(Double(distances[0]) - want) < 1e-6, "distance \(distances[0]) vs \(want)")
        #expect(abs(Double(sums[0]) - wantSum) < 1e-6 * Double(count) * 4, "sum \(sums[0]) vs \(wantSum)")
        // A zero vector is normalised by 1e−12 instead of its norm: the distance is ‖b̂‖ = 1.
        #expect(abs(fromZero[0] - 1) < 1e-6)
        #expect(sum(zero, count: count) == 0)
    }

    @Test(arguments: sizes) func axpyIsOneProductAndOneSumAValue(count: Int) {
        let x = Self.randomValues(count, seed: 700 + UInt64(count)), y = Self.randomValues(count, seed: 800 + UInt64(count))
        let output = Self.samePerPath(y) { y, path in axpy(count: count, 0.37, x, &y, path: path) }
        #expect(zip(output, zip(y, x)).allSatisfy { $0.bitPattern == ($1.0 + 0.37 * $1.1).bitPattern })
    }
}
