import CFMTensor
import Testing

/// The bf16 GEMM against an fp64 reference computed from the bf16-rounded inputs: the only
/// differences left are fp32 accumulation order, bounded by k · ε₃₂ · Σ|a·b| per element.
@Suite(.enabled(if: CPUFeatures.current.avx512BF16, "needs AVX512-BF16"))
struct BF16Tests {
    /// Round to nearest even on the bit pattern, as a reference for the hardware conversion (normal numbers).
    static func roundedReference(_ x: Float) -> Float {
        let bits = x.bitPattern
        return Float(bitPattern: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) & 0xFFFF_0000)
    }

    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var rng = SeededRandom(seed: seed)
        return (0..<count).map { _ in rng.uniform(-3, 3) }
    }

    @Test func roundingIsToNearestEven() {
        // bf16 keeps 7 mantissa bits: near 1 its spacing is 2⁻⁷, so 1 + 2⁻⁸ is a tie.
        let x: [Float] = [1, 1 + 1 / 256, 1 + 3 / 256, 1 + 1 / 512, 1 + 1.0001 / 256, -2.5e-3, 3.14159, 65504, -1e30]
        #expect(bf16Rounded(x) == x.map(Self.roundedReference))
        #expect(bf16Rounded([1 + 1 / 256]) == [1], "a tie rounds to the even mantissa")
        #expect(bf16Rounded([1 + 3 / 256]) == [1 + 1 / 64], "a tie rounds to the even mantissa")
        #expect(bf16Rounded([1 + 1.0001 / 256]) == [1 + 1 / 128], "above the tie rounds up")
        let random = Self.values(1000, seed: 7)
        #expect(bf16Rounded(random) == random.map(Self.roundedReference))
    }

    /// Sizes cover every edge of the kernel: rows beyond a 6-row tile and a 48-row block,
    /// columns beyond a 64-wide panel, odd k, k of exactly one 768-deep block and beyond two.
    @Test(arguments: [(1, 1, 1), (7, 70, 37), (100, 130, 600), (13, 64, 768), (97, 200, 3), (50, 65, 1601)])
    func matchesTheRoundedReference(m: Int, n: Int, k: Int) {
        let a = Self.values(m * k, seed: 1), w = Self.values(n * k, seed: 2), bias = Self.values(n, seed: 3)
        let start = Self.values(m * n, seed: 4)
        let (ra, rw) = (a.map(Self.roundedReference), w.map(Self.roundedReference))
        let packed = BF16Matrix(weight: w, outFeatures: n, inFeatures: k)
        var y = [Float](repeating: .nan, count: m * n), accumulated = start
        bf16Linear(rows: m, x: a, weight: packed, bias: nil, y: &y)
        bf16Linear(rows: m, x: a, weight: packed, bias: bias, y: &accumulated, accumulate: true)
        var worst = 0.0
        for i in 0..<m {
            for j in 0..<n {
                let (exact, magnitude) = fp64Product(ra, rw, row: i, column: j, k: k)
                let (s, b) = (Double(start[i * n + j]), Double(bias[j]))
                let bound = fp32AccumulationBound(k: k, magnitude: magnitude, addends: [s, b])
                worst = max(worst, abs(Double(y[i * n + j]) - exact) / bound)
                worst = max(worst, abs(Double(accumulated[i * n + j]) - (exact + s + b)) / bound)
            }
        }
        #expect(worst <= 1, "worst error \(worst) × the fp32 accumulation bound")
    }

    /// The rounding is what the result reflects: against the unrounded fp32 product the error is
    /// of bf16's order (2⁻⁸ relative), far above the accumulation bound — so the test above can fail.
    @Test func differsFromFp32ByTheRounding() {
        let (m, n, k) = (4, 16, 64)
        let a = Self.values(m * k, seed: 5), w = Self.values(n * k, seed: 6)
        var y = [Float](repeating: 0, count: m * n), reference = y
        bf16Linear(rows: m, x: a, weight: BF16Matrix(weight: w, outFeatures: n, inFeatures: k), bias: nil, y: &y)
        linear(rows: m, inFeatures: k, outFeatures: n, x: a, weight: w, bias: nil, y: &reference)
        let scale = reference.map(abs).max()!
        let relative = zip(y, reference).map { abs($0 - $1) }.max()! / scale
        #expect(relative > 1e-4 && relative < 2e-2)
    }

    @Test func sameBitsRunToRun() {
        let (m, n, k) = (300, 96, 400)
        let a = Self.values(m * k, seed: 8), packed = BF16Matrix(weight: Self.values(n * k, seed: 9), outFeatures: n, inFeatures: k)
        var first = [Float](repeating: 0, count: m * n), second = first
        bf16Linear(rows: m, x: a, weight: packed, bias: nil, y: &first)
        bf16Linear(rows: m, x: a, weight: packed, bias: nil, y: &second)
        #expect(first == second)
    }
}

@Suite struct PrecisionSupportTests {
    @Test func bf16IsRefusedWithoutTheFeature() {
        let without = CPUFeatures(flags: [], avx512BF16: false)
        #expect(throws: PrecisionError.unsupported(.bf16)) { try without.require(.bf16) }
        #expect(PrecisionError.unsupported(.bf16).description.contains("AVX512-BF16"))
        #expect(throws: Never.self) { try without.require(.fp32) }
        #expect(throws: Never.self) { try CPUFeatures(flags: [], avx512BF16: true).require(.bf16) }
    }
}
