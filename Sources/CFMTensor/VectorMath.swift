import CVectorMath

/// Which build of the vector kernels (`Sources/CVectorMath`: softmax rows, GELU, LayerNorm, the
/// scorer's reductions) runs. Both do the same operations in the same order over 16 lanes, so
/// they return the same bits; `avx512` does each 16-lane step in one instruction, `portable`
/// in four SSE ones.
public enum VectorPath: Int32, Sendable, CaseIterable {
    /// Baseline x86-64: runs on every CPU (`CFM_VECTOR_PORTABLE`).
    case portable = 0
    /// AVX-512 F, BW, DQ and VL (`CFM_VECTOR_AVX512`).
    case avx512 = 1

    /// The fastest build this CPU runs, chosen once from `CPUFeatures.current`.
    public static let current: VectorPath = CPUFeatures.current.avx512 ? .avx512 : .portable
}

extension CPUFeatures {
    /// AVX-512 F, BW, DQ and VL, as the kernel reports them (it lists them only when the OS
    /// saves the AVX-512 state): what `VectorPath.avx512` needs.
    public var avx512: Bool { ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains) }
}

/// ‖a / max(‖a‖, 1e−12) − b / max(‖b‖, 1e−12)‖₂ of two `count`-vectors: the distance of their
/// directions, 0…2.
public func normalizedDistance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int,
                               path: VectorPath = .current) -> Float {
    cfm_normalized_distance(a, b, count, path.rawValue)
}

/// Σ x of `count` values, in 16 partial sums added pairwise at the end.
public func sum(_ x: UnsafePointer<Float>, count: Int, path: VectorPath = .current) -> Float {
    cfm_sum(x, count, path.rawValue)
}

/// `y += a · x` on `count` values (single-threaded: callers split ranges).
public func axpy(count: Int, _ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                 path: VectorPath = .current) {
    cfm_axpy(count, a, x, y, path.rawValue)
}
