// Model-input geometry of images (docs/architecture.md, "Inputs and preprocessing"): centred
// square padding, PIL's antialiased bicubic resize of 8-bit pixels and PyTorch's `nearest`
// resize of float maps. All work on interleaved row-major pixels [height, width, channels].

/// How `padToSquare` fills the added border.
public enum SquarePadding<Element: Sendable>: Sendable {
    /// Repeat the nearest edge pixel (RGB images).
    case replicateEdge
    /// Fill with one value (0 for point clouds: "no measurement").
    case constant(Element)
}

/// Pads interleaved pixels [height, width, channels] to [side, side, channels] with
/// side = max(height, width), centred: left = (side − width)/2 columns, the rest on the right;
/// top = (side − height)/2 rows, the rest at the bottom.
public func padToSquare<Element: Sendable>(
    _ pixels: [Element], height: Int, width: Int, channels: Int, _ padding: SquarePadding<Element>
) -> [Element] {
    precondition(pixels.count == height * width * channels, "\(pixels.count) elements for \(height)×\(width)×\(channels)")
    let side = max(height, width)
    let top = (side - height) / 2, left = (side - width) / 2
    var out: [Element]
    switch padding {
    case .replicateEdge:
        precondition(height > 0 && width > 0, "cannot replicate the edge of an empty image")
        out = []
        out.reserveCapacity(side * side * channels)
        for y in 0..<side {
            let sy = min(max(y - top, 0), height - 1)
            for x in 0..<side {
                let start = (sy * width + min(max(x - left, 0), width - 1)) * channels
                out.append(contentsOf: pixels[start..<(start + channels)])
            }
        }
    case let .constant(fill):
        out = [Element](repeating: fill, count: side * side * channels)
        for y in 0..<height {
            let src = y * width * channels, dst = ((y + top) * side + left) * channels
            out.replaceSubrange(dst..<(dst + width * channels), with: pixels[src..<(src + width * channels)])
        }
    }
    return out
}

/// Resizes interleaved 8-bit pixels [height, width, channels] to [outHeight, outWidth, channels]
/// exactly as Pillow's `Image.resize(size, Image.BICUBIC)` does: separable (horizontal pass,
/// clipped to 8 bits, then vertical pass), cubic kernel with a = −0.5 whose support is widened
/// by the downscale factor (antialiasing), weights normalised in double precision and rounded to
/// 22-bit fixed point, results rounded and clipped to 0…255.
public func bicubicResize(
    _ pixels: [UInt8], height: Int, width: Int, channels: Int, outHeight: Int, outWidth: Int
) -> [UInt8] {
    precondition(pixels.count == height * width * channels, "\(pixels.count) bytes for \(height)×\(width)×\(channels)")
    precondition(height > 0 && width > 0 && outHeight > 0 && outWidth > 0, "empty image")
    let horizontal = BicubicTaps(inSize: width, outSize: outWidth)
    let vertical = BicubicTaps(inSize: height, outSize: outHeight)
    // The horizontal pass only needs the source rows the vertical pass reads.
    let firstRow = vertical.start[0]
    let rowCount = vertical.start[outHeight - 1] + vertical.count[outHeight - 1] - firstRow
    let rowBytes = outWidth * channels
    var rows = [UInt8](repeating: 0, count: rowCount * rowBytes)
    var out = [UInt8](repeating: 0, count: outHeight * rowBytes)
    pixels.withUnsafeBufferPointer { src in
        rows.withUnsafeMutableBufferPointer { dst in
            parallelChunks(rowCount, minimumChunk: 16) { range in
                for r in range {
                    horizontal.resample(src.baseAddress! + (firstRow + r) * width * channels, stride: channels,
                                        channels: channels, into: dst.baseAddress! + r * rowBytes, outStride: channels)
                }
            }
        }
    }
    rows.withUnsafeBufferPointer { src in
        out.withUnsafeMutableBufferPointer { dst in
            parallelChunks(outWidth, minimumChunk: 16) { range in
                for x in range {
                    vertical.resample(src.baseAddress! + x * channels - firstRow * rowBytes, stride: rowBytes,
                                      channels: channels, into: dst.baseAddress! + x * channels, outStride: rowBytes)
                }
            }
        }
    }
    return out
}

/// Pillow's resampling coefficients for one axis (`precompute_coeffs` + `normalize_coeffs_8bpc`
/// in libImaging/Resample.c) with its bicubic filter.
struct BicubicTaps: Sendable {
    /// Fixed-point fraction bits of the weights.
    static let precisionBits = 22
    /// First source index read by each output index.
    let start: [Int]
    /// Number of source indices read by each output index.
    let count: [Int]
    /// `outSize × windowSize` weights in 22-bit fixed point.
    let weights: [Int32]
    let windowSize: Int

    /// Pillow's `bicubic_filter` (a = −0.5, support 2).
    static func cubic(_ x: Double) -> Double {
        let a = -0.5, x = abs(x)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }

    init(inSize: Int, outSize: Int) {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = 2 * filterScale
        windowSize = Int(support.rounded(.up)) * 2 + 1
        var start = [Int](), count = [Int](), weights = [Int32](repeating: 0, count: outSize * windowSize)
        for o in 0..<outSize {
            let center = (Double(o) + 0.5) * scale
            let lo = max(Int(center - support + 0.5), 0)
            let hi = min(Int(center + support + 0.5), inSize)
            var k = (lo..<hi).map { i in Self.cubic((Double(i) - center + 0.5) * (1 / filterScale)) }
            let total = k.reduce(0, +)
            if total != 0 { k = k.map { $0 / total } }
            for (j, w) in k.enumerated() {
                let fixed = w * Double(1 << Self.precisionBits)
                weights[o * windowSize + j] = Int32(w < 0 ? (fixed - 0.5).rounded(.towardZero) : (fixed + 0.5).rounded(.towardZero))
            }
            start.append(lo)
            count.append(hi - lo)
        }
        self.start = start
        self.count = count
        self.weights = weights
    }

    /// Resamples one line: `src[i * stride + c]` for source index i → `out[o * outStride + c]`.
    func resample(_ src: UnsafePointer<UInt8>, stride: Int, channels: Int,
                  into out: UnsafeMutablePointer<UInt8>, outStride: Int) {
        let half = Int32(1 << (Self.precisionBits - 1))
        weights.withUnsafeBufferPointer { w in
            for o in 0..<start.count {
                let k = w.baseAddress! + o * windowSize
                let line = src + start[o] * stride
                for c in 0..<channels {
                    var sum = half
                    for j in 0..<count[o] { sum &+= Int32(line[j * stride + c]) &* k[j] }
                    out[o * outStride + c] = Self.clip8(sum)
                }
            }
        }
    }

    /// Pillow's `clip8`: the fixed-point sum as a byte, saturated.
    static func clip8(_ value: Int32) -> UInt8 {
        if value >= Int32(1) << (precisionBits + 8) { return 255 }
        if value <= 0 { return 0 }
        return UInt8(value >> precisionBits)
    }
}

/// Resizes a float map [height, width, channels] to [outHeight, outWidth, channels] as PyTorch
/// 1.13 `interpolate(mode="nearest")` does: source index = min(⌊dst · (in/out)⌋, in − 1), with
/// the scale and the product in float32.
public func nearestResize(_ x: Tensor, outHeight: Int, outWidth: Int) -> Tensor {
    precondition(x.shape.count == 3, "nearestResize expects [height, width, channels], got \(x.shape)")
    let (height, width, channels) = (x.shape[0], x.shape[1], x.shape[2])
    let rows = nearestSourceIndices(inSize: height, outSize: outHeight)
    let cols = nearestSourceIndices(inSize: width, outSize: outWidth)
    var out = [Float]()
    out.reserveCapacity(outHeight * outWidth * channels)
    x.withUnsafeBufferPointer { src in
        for sy in rows {
            for sx in cols {
                let p = (sy * width + sx) * channels
                out.append(contentsOf: src[p..<(p + channels)])
            }
        }
    }
    return Tensor(shape: [outHeight, outWidth, channels], scalars: out)
}

/// PyTorch's `nearest` source index for every output index of one axis.
public func nearestSourceIndices(inSize: Int, outSize: Int) -> [Int] {
    let scale = Float(inSize) / Float(outSize)
    return (0..<outSize).map { min(Int((Float($0) * scale).rounded(.down)), inSize - 1) }
}
