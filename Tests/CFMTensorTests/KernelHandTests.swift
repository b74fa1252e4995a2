import CFMTensor
import CFMTestSupport
import Foundation
import Testing

/// Kernels on cases small enough to compute by hand.
@Suite struct KernelHandTests {
    @Test func gemmWithTransposesAndStrides() {
        // A = [[1,2,3],[4,5,6]] (2×3), B stored transposed as Bᵀ = [[1,0,1],[0,1,1]] (2×3).
        let a: [Float] = [1, 2, 3, 4, 5, 6], bt: [Float] = [1, 0, 1, 0, 1, 1]
        var c = [Float](repeating: 1, count: 4)
        gemm(m: 2, n: 2, k: 3, alpha: 2, a: a, lda: 3, b: bt, ldb: 3, transposeB: true, beta: 1, c: &c, ldc: 2)
        #expect(c == [9, 11, 21, 23])  // 2 · [[4, 5], [10, 11]] + 1
        // Column block of a wider matrix through lda: the middle column of A, times [[2]].
        var d = [Float](repeating: 0, count: 2)
        let two: [Float] = [2]
        a.withUnsafeBufferPointer { gemm(m: 2, n: 1, k: 1, a: $0.baseAddress! + 1, lda: 3, b: two, ldb: 1, c: &d, ldc: 1) }
        #expect(d == [4, 10])
    }

    @Test func linearAddsBiasAndAccumulates() {
        let x: [Float] = [1, 2], w: [Float] = [1, 1, 2, -1], b: [Float] = [10, 20]
        var y: [Float] = [100, 200]
        linear(rows: 1, inFeatures: 2, outFeatures: 2, x: x, weight: w, bias: b, y: &y, accumulate: true)
        #expect(y == [113, 220])
        linear(rows: 1, inFeatures: 2, outFeatures: 2, x: x, weight: w, bias: nil, y: &y)
        #expect(y == [3, 0])
    }

    @Test func layerNormOfThreeValues() {
        // mean 2, biased variance 2/3.
        let x: [Float] = [1, 2, 3], w: [Float] = [1, 2, 1], b: [Float] = [0, 0, 5]
        var y = [Float](repeating: 0, count: 3)
        layerNorm(rows: 1, dim: 3, x: x, weight: w, bias: b, eps: 0, y: &y)
        let s = Float(1.5).squareRoot()
        #expect(abs(y[0] + s) < 1e-6 && abs(y[1]) < 1e-6 && abs(y[2] - (s + 5)) < 1e-6)
    }

    @Test func softmaxOfKnownLogits() {
        var x: [Float] = [0, Float(log(3.0)), 1000]
        softmaxRowsInPlace(&x, rows: 1, cols: 2)
        #expect(abs(x[0] - 0.25) < 1e-7 && abs(x[1] - 0.75) < 1e-7 && x[2] == 1000)
        var big: [Float] = [1000, 1000]
        softmaxRowsInPlace(&big, rows: 1, cols: 2)
        #expect(big == [0.5, 0.5])
    }

    @Test func exponentialAndErfAreAccurate() {
        var worstExp: Double = 0, worstErf: Double = 0
        for i in 0...20000 {
            let x = Float(-87 + Double(i) * 175 / 20000)
            worstExp = max(worstExp, abs(Double(exponential(x)) / exp(Double(x)) - 1))
            let z = Float(-6 + Double(i) * 12 / 20000)
            worstErf = max(worstErf, abs(Double(errorFunction(z)) - erf(Double(z))))
        }
        #expect(worstExp < 3e-7)
        // Never subnormal: below the smallest normal result it is exactly 0.
        #expect(exponential(-87.5) == 0 && exponential(-1000) == 0 && exponential(-87.2).isNormal)
        var deep: [Float] = [-20, -30]
        geluInPlace(&deep, count: 2)
        #expect(deep.allSatisfy { $0 == 0 })
        #expect(worstErf < 5e-7)  // 1.5e-7 of the approximation plus float rounding
        #expect(errorFunction(0) == 0 || abs(errorFunction(0)) < 1e-8)
    }

    @Test func geluKnownValues() {
        var x: [Float] = [0, 1, -1, 10, -10]
        geluInPlace(&x, count: 5)
        let expected: [Float] = [0, 0.8413447, -0.1586553, 10, 0]
        for (a, e) in zip(x, expected) { #expect(abs(a - e) < 1e-6) }
    }

    @Test func bilinearDoublesA2x2Image() {
        // PyTorch align_corners=False: rows/cols at src −0.25 (clamped 0), 0.25, 0.75, 1.25 (→ i1 clamped).
        let x: [Float] = [0, 4, 8, 12]
        var y = [Float](repeating: 0, count: 16)
        bilinearResize(x, channels: 1, height: 2, width: 2, outHeight: 4, outWidth: 4, out: &y)
        #expect(y == [0, 1, 3, 4, 2, 3, 5, 6, 6, 7, 9, 10, 8, 9, 11, 12])
    }

    @Test func averagePoolCountsPaddingZeros() {
        // 3×3 ones, kernel 3, padding 1: the corner sees 4 ones of 9.
        let x = [Float](repeating: 1, count: 9)
        var y = [Float](repeating: 0, count: 9)
        averagePool(x, channels: 1, height: 3, width: 3, kernel: 3, padding: 1, out: &y)
        #expect(y == [4, 6, 4, 6, 9, 6, 4, 6, 4].map { Float($0) / 9 })
    }

    @Test func adaptivePoolUsesOverlappingWindows() {
        // 1×3 → 1×2: windows [0, 2) and [1, 3).
        let x: [Float] = [1, 3, 5]
        var y = [Float](repeating: 0, count: 2)
        adaptiveAveragePool(x, channels: 1, height: 1, width: 3, outHeight: 1, outWidth: 2, out: &y)
        #expect(y == [2, 4])
    }

    @Test func maxOverMembersTakesTheMaximumPerChannel() {
        let x: [Float] = [1, -5, 3, 2, 0, -1]  // 1 group, 3 members, 2 channels
        var y = [Float](repeating: 0, count: 2)
        maxOverMembers(x, groups: 1, members: 3, channels: 2, out: &y)
        #expect(y == [3, 2])
    }

    @Test func parallelChunksCoverEveryIndexOnce() {
        var hits = [Int](repeating: 0, count: 100_003)
        hits.withUnsafeMutableBufferPointer { h in
            parallelChunks(h.count, minimumChunk: 7) { range in for i in range { h[i] += 1 } }
        }
        #expect(hits.allSatisfy { $0 == 1 })
    }
}
