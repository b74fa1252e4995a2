import CFMTensor
import Testing

/// OpenBLAS runs the kernels the CPU's features allow, not its generic fallback.
@Suite struct BLASKernelTests {
    @Test func cpuFeaturesNameTheBestKernelSet() {
        func core(_ flags: String) -> String? { CPUFeatures(cpuinfo: "processor\t: 0\nflags\t\t: \(flags)\n").openBLASCore }
        #expect(core("sse2 avx2 fma avx512f avx512dq avx512bw avx512vl avx512_bf16 avx512_fp16") == "Cooperlake")
        #expect(core("sse2 avx2 fma avx512f avx512dq avx512bw avx512vl") == "SkylakeX")
        #expect(core("sse2 avx2 fma avx512f") == "Haswell")
        #expect(core("sse2 sse3 avx") == nil)
        #expect(CPUFeatures(cpuinfo: "").flags.isEmpty)
    }

    /// On a CPU newer than the OpenBLAS release, its load-time choice by model number falls
    /// back to the SSE3 kernels; the first GEMM must have replaced them.
    @Test func gemmRunsTheKernelsTheFeaturesAllow() {
        var c: [Float] = [0]
        gemm(m: 1, n: 1, k: 1, a: [2], lda: 1, b: [3], ldb: 1, c: &c, ldc: 1)
        #expect(c == [6])
        if CPUFeatures.current.openBLASCore != nil {
            #expect(BLAS.kernels != "Prescott", "OpenBLAS kept its generic kernels on a CPU with \(CPUFeatures.current.openBLASCore!)")
        }
        #expect(BLAS.threads == 1)
    }
}
