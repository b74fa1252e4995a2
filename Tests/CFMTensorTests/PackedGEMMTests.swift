import CFMTensor
import CPackedGEMM
import Testing

/// The packed fp32 GEMM (`Sources/CPackedGEMM`, gemm-bench's `cfm-fp32`) against an fp64
/// reference (within the fp32 accumulation bound k · ε · Σ|a·b|) and against itself under
/// every split of the rows.
@Suite(.enabled(if: CPUFeatures.current.avx512, "needs AVX-512"))
struct PackedGEMMTests {
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var rng = SeededRandom(seed: seed)
        return (0..<count).map { _ in rng.uniform(-3, 3) }
    }

    /// `w` [n, k] in the kernel's packed layout.
    static func pack(_ w: [Float], n: Int, k: Int) -> [Float] {
        var packed = [Float](repeating: .nan, count: cfm_f32_packed_count(Int32(n), Int32(k)))
        cfm_f32_pack_weights(Int32(n), Int32(k), w, Int32(k), &packed)
        return packed
    }

    /// `c (+)= a · Wᵀ (+ bias)` on rows `rows` of a [m, k] and c [m, n] (dense rows).
    static func multiply(_ rows: Range<Int>, a: [Float], packed: [Float], bias: [Float]?, c: inout [Float],
                         n: Int, k: Int, accumulate: Bool) {
        a.withUnsafeBufferPointer { a in
            c.withUnsafeMutableBufferPointer { c in
                cfm_f32_gemm(Int32(rows.count), Int32(n), Int32(k), a.baseAddress! + rows.lowerBound * k, Int32(k), packed,
                             bias, c.baseAddress! + rows.lowerBound * n, Int32(n), accumulate ? 1 : 0)
            }
        }
    }

    /// Sizes cover every edge of the kernel: rows beyond an 8-row tile and a 256-row block,
    /// columns beyond a 48-wide panel and ending in its second and third vector, k of exactly
    /// one 512-deep block, beyond it and beyond two, k = 1 and 3.
    @Test(arguments: [(1, 1, 1), (7, 70, 37), (100, 130, 600), (13, 48, 512), (97, 200, 3), (50, 65, 1601),
                      (300, 20, 40), (9, 96, 513)])
    func matchesTheReference(m: Int, n: Int, k: Int) {
        let a = Self.values(m * k, seed: 1), w = Self.values(n * k, seed: 2), bias = Self.values(n, seed: 3)
        let start = Self.values(m * n, seed: 4), packed = Self.pack(w, n: n, k: k)
        var y = [Float](repeating: .nan, count: m * n), biased = y, accumulated = start
        Self.multiply(0..<m, a: a, packed: packed, bias: nil, c: &y, n: n, k: k, accumulate: false)
        Self.multiply(0..<m, a: a, packed: packed, bias: bias, c: &biased, n: n, k: k, accumulate: false)
        Self.multiply(0..<m, a: a, packed: packed, bias: bias, c: &accumulated, n: n, k: k, accumulate: true)
        var worst = 0.0
        for i in 0..<m {
            for j in 0..<n {
                var exact = 0.0, magnitude = 0.0
                for p in 0..<k {
                    let product = Double(a[i * k + p]) * Double(w[j * k + p])
                    exact += product
                    magnitude += abs(product)
                }
                let (s, b) = (Double(start[i * n + j]), Double(bias[j]))
                let bound = Double(k + 2) * Double(Float.ulpOfOne) * (magnitude + abs(s) + abs(b))
                for (got, expected) in [(y[i * n + j], exact), (biased[i * n + j], exact + b), (accumulated[i * n + j], exact + s + b)] {
                    worst = max(worst, abs(Double(got) - expected) / max(bound, .leastNormalMagnitude))
                }
            }
        }
        #expect(worst <= 1, "worst error \(worst) × the fp32 accumulation bound")
    }

    /// The reference comparison can fail: one weight changed before packing moves exactly its
    /// output by the matching activation, and no other output.
    @Test func eachWeightReachesItsOutput() {
        let (m, n, k) = (5, 50, 64)
        let a = Self.values(m * k, seed: 5)
        var w = Self.values(n * k, seed: 6)
        var before = [Float](repeating: 0, count: m * n), after = before
        Self.multiply(0..<m, a: a, packed: Self.pack(w, n: n, k: k), bias: nil, c: &before, n: n, k: k, accumulate: false)
        w[49 * k + 3] += 1
        Self.multiply(0..<m, a: a, packed: Self.pack(w, n: n, k: k), bias: nil, c: &after, n: n, k: k, accumulate: false)
        for i in 0..<m {
            #expect(abs(after[i * n + 49] - before[i * n + 49] - a[i * k + 3]) < 1e-3, "row \(i), the changed output")
            #expect(Array(after[(i * n)..<(i * n + 49)]) == Array(before[(i * n)..<(i * n + 49)]), "row \(i), the others")
        }
    }

    /// A row's bits are the same whichever rows a call gets: what makes the result independent
    /// of how `parallelChunks` would split the rows across cores (and of the core count).
    @Test(arguments: [[785], [392, 393], [1, 784], [7, 8, 9, 761], [256, 256, 273], [100, 100, 100, 100, 385]])
    func sameBitsForAnySplitOfTheRows(chunks: [Int]) {
        let (m, n, k) = (785, 100, 1100)
        let a = Self.values(m * k, seed: 7), bias = Self.values(n, seed: 8)
        let packed = Self.pack(Self.values(n * k, seed: 9), n: n, k: k)
        var whole = Self.values(m * n, seed: 10), split = whole
        Self.multiply(0..<m, a: a, packed: packed, bias: bias, c: &whole, n: n, k: k, accumulate: true)
        var row = 0
        for rows in chunks {
            Self.multiply(row..<(row + rows), a: a, packed: packed, bias: bias, c: &split, n: n, k: k, accumulate: true)
            row += rows
        }
        #expect(whole.map(\.bitPattern) == split.map(\.bitPattern))
    }

    @Test func sameBitsRunToRun() {
        let (m, n, k) = (300, 96, 400)
        let a = Self.values(m * k, seed: 11), packed = Self.pack(Self.values(n * k, seed: 12), n: n, k: k)
        var first = [Float](repeating: 0, count: m * n), second = first
        Self.multiply(0..<m, a: a, packed: packed, bias: nil, c: &first, n: n, k: k, accumulate: false)
        Self.multiply(0..<m, a: a, packed: packed, bias: nil, c: &second, n: n, k: k, accumulate: false)
        #expect(first.map(\.bitPattern) == second.map(\.bitPattern))
    }
}
