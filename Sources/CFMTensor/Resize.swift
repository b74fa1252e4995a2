/// One output coordinate of a linear interpolation: the two source indices and weights.
public struct LinearTap: Sendable {
    public let i0: Int, i1: Int
    public let w0: Float, w1: Float

    /// PyTorch's `align_corners=False` rule: src = (dst + ½)·in/out − ½, clamped below at 0;
    /// the upper neighbour is clamped to the last index.
    public static func taps(inSize: Int, outSize: Int) -> [LinearTap] {
        let scale = Float(inSize) / Float(outSize)
        return (0..<outSize).map { dst in
            let src = max(0, scale * (Float(dst) + 0.5) - 0.5)
            let i0 = Int(src)
            let w1 = src - Float(i0)
            return LinearTap(i0: i0, i1: i0 < inSize - 1 ? i0 + 1 : i0, w0: 1 - w1, w1: w1)
        }
    }
}

/// Bilinear resize of planes [channels, height, width] → [channels, outHeight, outWidth]
/// with PyTorch `interpolate(mode="bilinear", align_corners=False)` semantics.
public func bilinearResize(
    _ x: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
    outHeight: Int, outWidth: Int, out: UnsafeMutablePointer<Float>
) {
    let ty = LinearTap.taps(inSize: height, outSize: outHeight)
    let tx = LinearTap.taps(inSize: width, outSize: outWidth)
    parallelChunks(channels, minimumChunk: max(1, 65536 / max(1, outHeight * outWidth))) { range in
        for c in range {
            let plane = x + c * height * width, outPlane = out + c * outHeight * outWidth
            for (oy, y) in ty.enumerated() {
                let r0 = plane + y.i0 * width, r1 = plane + y.i1 * width
                let dst = outPlane + oy * outWidth
                for (ox, t) in tx.enumerated() {
                    dst[ox] = y.w0 * (t.w0 * r0[t.i0] + t.w1 * r0[t.i1])
                        + y.w1 * (t.w0 * r1[t.i0] + t.w1 * r1[t.i1])
                }
            }
        }
    }
}
