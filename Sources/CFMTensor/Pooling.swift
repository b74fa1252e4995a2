/// Average pooling of planes [channels, height, width] with a kernel×kernel window,
/// stride 1 and `padding` zeros on every side, always dividing by kernel² (PyTorch
/// `avg_pool2d(count_include_pad=True)`): the 3×3 feature smoothing (padding 0) and the
/// 5×5 / 7×7 box filters of the anomaly map (padding 2 / 3).
/// Output: [channels, height + 2·padding − kernel + 1, width + 2·padding − kernel + 1].
public func averagePool(
    _ x: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
    kernel: Int, padding: Int, out: UnsafeMutablePointer<Float>
) {
    let outH = height + 2 * padding - kernel + 1, outW = width + 2 * padding - kernel + 1
    precondition(outH > 0 && outW > 0, "kernel \(kernel) larger than padded \(height)×\(width)")
    let norm = 1 / Float(kernel * kernel)
    parallelChunks(channels, minimumChunk: max(1, 32768 / max(1, height * width))) { range in
        // Separable: horizontal window sums of each input row, then vertical sums.
        var rowSums = [Float](repeating: 0, count: height * outW)
        rowSums.withUnsafeMutableBufferPointer { sums in
            for c in range {
                let plane = x + c * height * width
                for y in 0..<height {
                    let row = plane + y * width, dst = sums.baseAddress! + y * outW
                    for ox in 0..<outW {
                        let lo = max(0, ox - padding), hi = min(width, ox - padding + kernel)
                        var s: Float = 0
                        for ix in lo..<max(lo, hi) { s += row[ix] }
                        dst[ox] = s
                    }
                }
                let outPlane = out + c * outH * outW
                for oy in 0..<outH {
                    let lo = max(0, oy - padding), hi = min(height, oy - padding + kernel)
                    let dst = outPlane + oy * outW
                    for ox in 0..<outW { dst[ox] = 0 }
                    for iy in lo..<max(lo, hi) {
                        let src = sums.baseAddress! + iy * outW
                        for ox in 0..<outW { dst[ox] += src[ox] }
                    }
                    for ox in 0..<outW { dst[ox] *= norm }
                }
            }
        }
    }
}

/// PyTorch `adaptive_avg_pool2d`: planes [channels, height, width] → [channels, outHeight,
/// outWidth]; output cell i averages input rows [⌊i·h/H⌋, ⌈(i+1)·h/H⌉) (columns alike).
public func adaptiveAveragePool(
    _ x: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
    outHeight: Int, outWidth: Int, out: UnsafeMutablePointer<Float>
) {
    func window(_ i: Int, _ inSize: Int, _ outSize: Int) -> Range<Int> {
        (i * inSize / outSize)..<(((i + 1) * inSize + outSize - 1) / outSize)
    }
    let rows = (0..<outHeight).map { window($0, height, outHeight) }
    let cols = (0..<outWidth).map { window($0, width, outWidth) }
    parallelChunks(channels, minimumChunk: max(1, 32768 / max(1, height * width))) { range in
        for c in range {
            let plane = x + c * height * width, outPlane = out + c * outHeight * outWidth
            for (oy, ry) in rows.enumerated() {
                for (ox, rx) in cols.enumerated() {
                    var s: Float = 0
                    for iy in ry { for ix in rx { s += plane[iy * width + ix] } }
                    outPlane[oy * outWidth + ox] = s / Float(ry.count * rx.count)
                }
            }
        }
    }
}
