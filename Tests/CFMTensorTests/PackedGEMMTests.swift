import CFMTensor
import Testing

/// The packed fp32 GEMM (`PackedMatrix`, `packedMatMul`, `packedLinear`; `Sources/CPackedGEMM`)
/// against an fp64 reference (within the fp32 accumulation bound k · ε · Σ|a·b|), against
/// itself under every split of the rows, and its epilogues (bias, residual, GELU) against the
/// separate passes they replace, bit for bit.
@Suite(.enabled(if: CPUFeatures.current.avx512, "needs AVX-512"))
struct PackedGEMMTests {
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var rng = SeededRandom(seed: seed)
        return (0..<count).map { _ in rng.uniform(-3, 3) }
    }

    /// How many values of `a` and `b` differ in their bits (0 when they are the same bits).
    static func differing(_ a: [Float], _ b: [Float]) -> Int {
        zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count + abs(a.count - b.count)
    }

    /// `c (+)= GELU?(a · Wᵀ (+ bias))` on rows `rows` of a [m, k] and c [m, n] (dense rows).
    static func multiply(_ rows: Range<Int>, a: [Float], weight: PackedMatrix, bias: [Float]?, c: inout [Float],
                         accumulate: Bool, gelu: Bool = false) {
        let (n, k) = (weight.outFeatures, weight.inFeatures)
        a.withUnsafeBufferPointer { a in
            c.withUnsafeMutableBufferPointer { c in
                packedMatMul(m: rows.count, a: a.baseAddress! + rows.lowerBound * k, lda: k, weight: weight, bias: bias,
                             c: c.baseAddress! + rows.lowerBound * n, ldc: n, accumulate: accumulate, gelu: gelu)
            }
        }
    }

    /// Sizes cover every edge of the kernel: rows beyond a 9-row tile and a 396-row block,
    /// columns beyond a 48-wide panel and ending in its second and third vector, k in one block
    /// (up to 1024), exactly 1024, one past it (two 512-deep blocks and a 1-deep one), beyond three
    /// blocks, k = 1 and 3.
    static let sizes = [(1, 1, 1), (7, 70, 37), (100, 130, 600), (13, 48, 1024), (97, 200, 3), (50, 65, 1601),
                        (400, 20, 40), (9, 96, 1025)]

    @Test(arguments: sizes)
    func matchesTheReference(m: Int, n: Int, k: Int) {
        let a = Self.values(m * k, seed: 1), w = Self.values(n * k, seed: 2), bias = Self.values(n, seed: 3)
        let start = Self.values(m * n, seed: 4), packed = PackedMatrix(weight: w, outFeatures: n, inFeatures: k)
        var y = [Float](repeating: .nan, count: m * n), biased = y, accumulated = start
        Self.multiply(0..<m, a: a, weight: packed, bias: nil, c: &y, accumulate: false)
        Self.multiply(0..<m, a: a, weight: packed, bias: bias, c: &biased, accumulate: false)
        Self.multiply(0..<m, a: a, weight: packed, bias: bias, c: &accumulated, accumulate: true)
        var worst = 0.0
        for i in 0..<m {
            for j in 0..<n {
                let (exact, magnitude) = fp64Product(a, w, row: i, column: j, k: k)
                let (s, b) = (Double(start[i * n + j]), Double(bias[j]))
                let bound = fp32AccumulationBound(k: k, magnitude: magnitude, addends: [s, b])
                for (got, expected) in [(y[i * n + j], exact), (biased[i * n + j], exact + b), (accumulated[i * n + j], exact + s + b)] {
                    worst = max(worst, abs(Double(got) - expected) / bound)
                }
            }
        }
        #expect(worst <= 1, "worst error \(worst) × the fp32 accumulation bound")
    }

    /// The GELU epilogue is `geluInPlace` over the outputs, bit for bit: with and without the
    /// bias and the residual, over one k block and several, in full and partial panels.
    @Test(arguments: sizes)
    func geluEpilogueIsTheSeparatePass(m: Int, n: Int, k: Int) {
        let a = Self.values(m * k, seed: 13), bias = Self.values(n, seed: 14), start = Self.values(m * n, seed: 15)
        let packed = PackedMatrix(weight: Self.values(n * k, seed: 16), outFeatures: n, inFeatures: k)
        for (withBias, accumulate) in [(false, false), (true, false), (true, true)] {
            var fused = start, separate = start
            Self.multiply(0..<m, a: a, weight: packed, bias: withBias ? bias : nil, c: &fused, accumulate: accumulate, gelu: true)
            Self.multiply(0..<m, a: a, weight: packed, bias: withBias ? bias : nil, c: &separate, accumulate: accumulate)
            geluInPlace(&separate, count: m * n, path: .avx512)
            #expect(Self.differing(fused, separate) == 0, "bias \(withBias), accumulate \(accumulate)")
        }
    }

    /// The reference comparison can fail: one weight changed before packing moves exactly its
    /// output by the matching activation, and no other output.
    @Test func eachWeightReachesItsOutput() {
        let (m, n, k) = (5, 50, 64)
        let a = Self.values(m * k, seed: 5)
        var w = Self.values(n * k, seed: 6)
        var before = [Float](repeating: 0, count: m * n), after = before
        Self.multiply(0..<m, a: a, weight: PackedMatrix(weight: w, outFeatures: n, inFeatures: k), bias: nil, c: &before,
                      accumulate: false)
        w[49 * k + 3] += 1
        Self.multiply(0..<m, a: a, weight: PackedMatrix(weight: w, outFeatures: n, inFeatures: k), bias: nil, c: &after,
                      accumulate: false)
        for i in 0..<m {
            #expect(abs(after[i * n + 49] - before[i * n + 49] - a[i * k + 3]) < 1e-3, "row \(i), the changed output")
            #expect(Array(after[(i * n)..<(i * n + 49)]) == Array(before[(i * n)..<(i * n + 49)]), "row \(i), the others")
        }
    }

    /// A row's bits are the same whichever rows a call gets: what makes the result independent
    /// of how `packedLinear` splits the rows across cores (and of the core count).
    @Test(arguments: [[785], [392, 393], [1, 784], [7, 8, 9, 761], [396, 389], [100, 100, 100, 100, 385]])
    func sameBitsForAnySplitOfTheRows(chunks: [Int]) {
        let (m, n, k) = (785, 100, 1100)
        let a = Self.values(m * k, seed: 7), bias = Self.values(n, seed: 8)
        let packed = PackedMatrix(weight: Self.values(n * k, seed: 9), outFeatures: n, inFeatures: k)
        for gelu in [false, true] {
            var whole = Self.values(m * n, seed: 10), split = whole, parallel = whole
            Self.multiply(0..<m, a: a, weight: packed, bias: bias, c: &whole, accumulate: true, gelu: gelu)
            var row = 0
            for rows in chunks {
                Self.multiply(row..<(row + rows), a: a, weight: packed, bias: bias, c: &split, accumulate: true, gelu: gelu)
                row += rows
            }
            packedLinear(rows: m, x: a, weight: packed, bias: bias, y: &parallel, accumulate: true, gelu: gelu)
            #expect(Self.differing(whole, split) == 0, "gelu \(gelu)")
            #expect(Self.differing(whole, parallel) == 0, "gelu \(gelu), packedLinear")
        }
    }

    @Test func sameBitsRunToRun() {
        let (m, n, k) = (300, 96, 400)
        let a = Self.values(m * k, seed: 11)
        let packed = PackedMatrix(weight: Self.values(n * k, seed: 12), outFeatures: n, inFeatures: k)
        var first = [Float](repeating: 0, count: m * n), second = first
        Self.multiply(0..<m, a: a, weight: packed, bias: nil, c: &first, accumulate: false)
        Self.multiply(0..<m, a: a, weight: packed, bias: nil, c: &second, accumulate: false)
        #expect(Self.differing(first, second) == 0)
    }

    /// Packing only moves values: the weight comes back exactly, padding and k blocks included.
    @Test(arguments: sizes)
    func unpackingGivesTheWeightBack(m _: Int, n: Int, k: Int) {
        let w = Self.values(n * k, seed: 17)
        #expect(PackedMatrix(weight: w, outFeatures: n, inFeatures: k).unpacked() == w)
    }
}
