import CBF16
import Foundation

/// What the CPU the process runs on can do, as far as the engine's kernels care: which
/// OpenBLAS kernel set suits it, and whether the bf16 GEMM can run.
public struct CPUFeatures: Sendable, Equatable {
    /// The instruction-set extensions the kernel reports (Linux: the `flags` line of
    /// /proc/cpuinfo, names as the kernel spells them, e.g. `avx512_bf16`; none elsewhere).
    public var flags: Set<String>
    /// AVX-512F with AVX512-BF16 (vdpbf16ps), enabled by the OS: what `Precision.bf16` needs.
    public var avx512BF16: Bool

    public init(flags: Set<String>, avx512BF16: Bool) { (self.flags, self.avx512BF16) = (flags, avx512BF16) }

    /// The features of the first processor listed in `cpuinfo` (/proc/cpuinfo's format); bf16
    /// as the flags claim it (the OS's consent is only checked for `current`).
    public init(cpuinfo: String) {
        let line = cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") }
        flags = Set((line?.split(separator: ":").last?.split(separator: " ") ?? []).map(String.init))
        avx512BF16 = flags.contains("avx512f") && flags.contains("avx512_bf16")
    }

    /// This machine, detected once: the flags from /proc/cpuinfo, bf16 from cpuid leaf 7.1 and
    /// XCR0 (the OS must save the AVX-512 state for the kernel to be usable).
    public static let current = CPUFeatures(
        flags: CPUFeatures(cpuinfo: (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "").flags,
        avx512BF16: cfm_cpu_has_avx512_bf16() != 0)

    /// Refuses a precision this CPU cannot run.
    public func require(_ precision: Precision) throws(PrecisionError) {
        if precision == .bf16 && !avx512BF16 { throw .unsupported(precision) }
    }

    /// The best OpenBLAS x86-64 kernel set these features run, or nil for none better than SSE3.
    public var openBLASCore: String? {
        let avx512 = ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains)
        if avx512 && flags.contains("avx512_bf16") { return "Cooperlake" }
        if avx512 { return "SkylakeX" }
        if flags.contains("avx2") && flags.contains("fma") { return "Haswell" }
        return nil
    }
}
