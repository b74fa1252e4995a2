import CFMModels
import CFMTensor
import CFMTestSupport
import Foundation
import Testing

/// `Linear` on its two fp32 kernels: the packed layer keeps only the packed weight yet gives it
/// back exactly, computes what the OpenBLAS layer computes (within the fp32 accumulation bound),
/// and on either kernel `applyGELU` is `apply` followed by `geluInPlace`, bit for bit.
@Suite(.enabled(if: CPUFeatures.current.avx512, "the packed kernel needs AVX-512"))
struct LinearKernelTests {
    let rows = 70, inFeatures = 600, outFeatures = 100
    let weights: SafeTensors

    init() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }  // the open file stays readable
        var rng = SeededRandom(seed: 21)
        let weight = (0..<(outFeatures * inFeatures)).map { _ in rng.uniform(-1, 1) }
        let bias = (0..<outFeatures).map { _ in rng.uniform(-1, 1) }
        let url = directory.appendingPathComponent("linear.safetensors")
        try SafeTensors.write(["fc.weight": Tensor(shape: [outFeatures, inFeatures], scalars: weight),
                               "fc.bias": Tensor(shape: [outFeatures], scalars: bias)], to: url)
        weights = try SafeTensors(contentsOf: url)
    }

    func layer(_ kernel: FP32Kernel) throws -> Linear {
        try Linear(weights, "fc", in: inFeatures, out: outFeatures, fp32Kernel: kernel)
    }

    func input() -> [Float] {
        var rng = SeededRandom(seed: 22)
        return (0..<(rows * inFeatures)).map { _ in rng.uniform(-2, 2) }
    }

    @Test func packedLayerGivesItsWeightBack() throws {
        #expect(try layer(.packed).weight == layer(.blas).weight)
    }

    @Test func bothKernelsComputeTheSameLayer() throws {
        let x = input(), blas = try layer(.blas), packed = try layer(.packed)
        var expected = [Float](repeating: 0.5, count: rows * outFeatures), got = expected
        blas.apply(rows: rows, x: x, y: &expected, accumulate: true)
        packed.apply(rows: rows, x: x, y: &got, accumulate: true)
        // k + 2 roundings of at most |x|·|w| = 2 each, plus the residual and the bias.
        let bound = Float(inFeatures + 2) * Float.ulpOfOne * (Float(inFeatures) * 2 + 2)
        let worst = zip(expected, got).map { abs($0 - $1) }.max()!
        #expect(worst <= 2 * bound, "worst difference \(worst)")
    }

    @Test(arguments: [FP32Kernel.blas, .packed])
    func applyGELUIsApplyThenGELU(kernel: FP32Kernel) throws {
        let x = input(), linear = try layer(kernel)
        var fused = [Float](repeating: .nan, count: rows * outFeatures), separate = fused
        linear.applyGELU(rows: rows, x: x, y: &fused)
        linear.apply(rows: rows, x: x, y: &separate)
        geluInPlace(&separate, count: rows * outFeatures)
        #expect(zip(fused, separate).filter { $0.bitPattern != $1.bitPattern }.isEmpty)
    }
}
