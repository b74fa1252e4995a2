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
/// 22-bit fixed point, results rounded and clipped to 0…255. `channels` is 1…4.
public func bicubicResize(
    _ pixels: [UInt8], height: Int, width: Int, channels: Int, outHeight: Int, outWidth: Int
) -> [UInt8] {
    precondition(pixels.count == height * width * channels, "\(pixels.count) bytes for \(height)×\(width)×\(channels)")
    var scratch: [UInt8] = []
    return pixels.withUnsafeBufferPointer { src in
        bicubicResample(src, height: height, width: width, channels: channels, paddedHeight: height, paddedWidth: width,
                        outHeight: outHeight, outWidth: outWidth, scratch: &scratch)
    }
}

/// Pads interleaved 8-bit pixels [height, width, channels] to the centred square of side
/// max(height, width) by edge replication and resizes it to [outSize, outSize, channels] with
/// Pillow's bicubic — byte for byte `bicubicResize(padToSquare(pixels, …, .replicateEdge), …)` —
/// without building the square: a tap on a padding pixel reads the edge pixel it replicates,
/// and each distinct source row goes through the horizontal pass once. `scratch` holds the
/// horizontal pass (height × outSize × channels bytes); pass the same array frame after frame
/// to reuse it.
public func paddedSquareBicubicResize(
    _ pixels: UnsafeBufferPointer<UInt8>, height: Int, width: Int, channels: Int, outSize: Int, scratch: inout [UInt8]
) -> [UInt8] {
    precondition(pixels.count == height * width * channels, "\(pixels.count) bytes for \(height)×\(width)×\(channels)")
    let side = max(height, width)
    return bicubicResample(pixels, height: height, width: width, channels: channels, paddedHeight: side, paddedWidth: side,
                           outHeight: outSize, outWidth: outSize, scratch: &scratch)
}

/// Pillow's bicubic resize of the `paddedHeight × paddedWidth` image in which the
/// `height × width` source sits centred (top = (paddedHeight − height)/2, left likewise) with its
/// edge pixels replicated outwards; equal sizes mean no padding.
func bicubicResample(
    _ pixels: UnsafeBufferPointer<UInt8>, height: Int, width: Int, channels: Int, paddedHeight: Int, paddedWidth: Int,
    outHeight: Int, outWidth: Int, scratch rows: inout [UInt8]
) -> [UInt8] {
    precondition(height > 0 && width > 0 && outHeight > 0 && outWidth > 0, "empty image")
    precondition((1...4).contains(channels), "bicubic resize takes 1 to 4 channels, got \(channels)")
    let horizontal = BicubicTaps(inSize: paddedWidth, outSize: outWidth, sourceSize: width)
    let vertical = BicubicTaps(inSize: paddedHeight, outSize: outHeight, sourceSize: height)
    // The horizontal pass runs once per source row the vertical pass reads (rows firstRow…).
    let (firstRow, rowCount) = vertical.sourceRange
    let rowBytes = outWidth * channels
    if rows.count < rowCount * rowBytes { rows = [UInt8](repeating: 0, count: rowCount * rowBytes) }
    rows.withUnsafeMutableBufferPointer { dst in
        parallelChunks(rowCount, minimumChunk: 16) { range in
            // The row being filtered, one Double lane per channel (32 bytes a pixel).
            let line = UnsafeMutablePointer<SIMD4<Double>>.allocate(capacity: width)
            defer { line.deallocate() }
            for r in range {
                let y = firstRow + r, source = UnsafeRawPointer(pixels.baseAddress! + y * width * channels)
                // 4-byte loads (lanes past `channels` hold the next pixel's bytes, never read back),
                // except where they would run past the image.
                let sourceRowBytes = width * channels
                let loads = y < height - 1 ? width : sourceRowBytes < 4 ? 0 : (sourceRowBytes - 4) / channels + 1
                for i in 0..<loads {
                    let bytes = source.loadUnaligned(fromByteOffset: i * channels, as: SIMD4<UInt8>.self)
                    line[i] = SIMD4<Double>(SIMD4<Int32>(truncatingIfNeeded: bytes))
                }
                for i in loads..<width {
                    var pixel = SIMD4<Double>()
                    for c in 0..<channels { pixel[c] = Double(source.load(fromByteOffset: i * channels + c, as: UInt8.self)) }
                    line[i] = pixel
                }
                horizontal.resampleRow(line, channels: channels, into: dst.baseAddress! + r * rowBytes)
            }
        }
    }
    return [UInt8](unsafeUninitializedCapacity: outHeight * rowBytes) { out, initialized in
        rows.withUnsafeBufferPointer { src in
            parallelChunks(outHeight, minimumChunk: 8) { range in
                var sums = [Int32](repeating: 0, count: rowBytes)
                for o in range {
                    vertical.resampleColumns(src.baseAddress! - firstRow * rowBytes, rowBytes: rowBytes, output: o,
                                             sums: &sums, into: out.baseAddress! + o * rowBytes)
                }
            }
        }
        initialized = outHeight * rowBytes
    }
}

/// Pillow's resampling coefficients for one axis (`precompute_coeffs` + `normalize_coeffs_8bpc`
/// in libImaging/Resample.c) with its bicubic filter, on an axis of `inSize` pixels of which
/// the middle `sourceSize` (starting at (inSize − sourceSize)/2) are stored and the rest repeat
/// the nearest stored one: each tap holds the stored index it reads.
struct BicubicTaps: Sendable {
    /// Fixed-point fraction bits of the weights.
    static let precisionBits = 22
    /// Number of taps of each output index.
    let count: [Int]
    /// `outSize × windowSize` stored (source) indices, clamped to 0..<sourceSize.
    let sources: [Int]
    /// `outSize × windowSize` weights in 22-bit fixed point.
    let weights: [Int32]
    /// `weights` as Doubles: a byte times a weight (at most 30 bits) and sums of such products
    /// are exact in Double, so a Double sum is Pillow's integer sum.
    let exactWeights: [Double]
    let windowSize: Int

    /// Pillow's `bicubic_filter` (a = −0.5, support 2).
    static func cubic(_ x: Double) -> Double {
        let a = -0.5, x = abs(x)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }

    init(inSize: Int, outSize: Int, sourceSize: Int) {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = 2 * filterScale
        let offset = (inSize - sourceSize) / 2
        windowSize = Int(support.rounded(.up)) * 2 + 1
        var count = [Int](), sources = [Int](repeating: 0, count: outSize * windowSize)
        var weights = [Int32](repeating: 0, count: outSize * windowSize)
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
                sources[o * windowSize + j] = min(max(lo + j - offset, 0), sourceSize - 1)
            }
            count.append(hi - lo)
        }
        self.count = count
        self.sources = sources
        self.weights = weights
        exactWeights = weights.map(Double.init)
    }

    /// The stored indices the taps read: `first ..< first + count`.
    var sourceRange: (first: Int, count: Int) {
        var (lo, hi) = (Int.max, Int.min)
        for o in count.indices where count[o] > 0 {
            lo = min(lo, sources[o * windowSize])
            hi = max(hi, sources[o * windowSize + count[o] - 1])
        }
        return lo <= hi ? (lo, hi - lo + 1) : (0, 0)
    }

    /// Horizontal pass over one row: pixel i's channels in the first `channels` lanes of
    /// `line[i]` (bytes as Doubles; the other lanes are ignored) → output pixel o at
    /// `out[o * channels …]`, clipped to 8 bits. The sums are
    /// exact in Double (see `exactWeights`): Pillow's integer arithmetic, in Double lanes
    /// because 32-bit integer multiplication has no vector instruction on the baseline x86-64.
    func resampleRow(_ line: UnsafePointer<SIMD4<Double>>, channels: Int, into out: UnsafeMutablePointer<UInt8>) {
        let half = Int32(1) << (Self.precisionBits - 1)
        exactWeights.withUnsafeBufferPointer { w in
            sources.withUnsafeBufferPointer { s in
                count.withUnsafeBufferPointer { count in
                    for o in 0..<count.count {
                        var sum = SIMD4<Double>()
                        for j in (o * windowSize)..<(o * windowSize + count[o]) { sum += line[s[j]] * w[j] }
                        for c in 0..<channels { out[o * channels + c] = Self.clip8(Int32(sum[c]) &+ half) }
                    }
                }
            }
        }
    }

    /// Vertical pass for output row `output`: row i of the horizontal pass at
    /// `rows[i * rowBytes …]` (i a stored index) → `out[0 ..< rowBytes]`, clipped to 8 bits.
    /// `sums` is rowBytes of scratch.
    func resampleColumns(_ rows: UnsafePointer<UInt8>, rowBytes: Int, output o: Int, sums: inout [Int32],
                         into out: UnsafeMutablePointer<UInt8>) {
        sums.withUnsafeMutableBufferPointer { sums in
            sums.update(repeating: 1 << (Self.precisionBits - 1))
            for j in (o * windowSize)..<(o * windowSize + count[o]) {
                let row = rows + sources[j] * rowBytes, w = weights[j]
                for i in 0..<rowBytes { sums[i] &+= Int32(row[i]) &* w }
            }
            for i in 0..<rowBytes { out[i] = Self.clip8(sums[i]) }
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
    let scalars = x.withUnsafeBufferPointer { src in
        gather(src, width: width, channels: channels, rows: nearestSourceIndices(inSize: height, outSize: outHeight),
               columns: nearestSourceIndices(inSize: width, outSize: outWidth))
    }
    return Tensor(shape: [outHeight, outWidth, channels], scalars: scalars)
}

/// Pads a float map [height, width, channels] to the centred square of side max(height, width)
/// with zeros and resizes it to [outSize, outSize, channels] with PyTorch's `nearest` — value
/// for value `nearestResize(padToSquare(x, …, .constant(0)), …)` — without building the square:
/// the resize only selects pixels, so each output pixel is read straight from the source, or is
/// zero where it falls on the padding.
public func paddedSquareNearestResize(
    _ x: UnsafeBufferPointer<Float>, height: Int, width: Int, channels: Int, outSize: Int
) -> Tensor {
    precondition(x.count == height * width * channels, "\(x.count) values for \(height)×\(width)×\(channels)")
    let side = max(height, width), indices = nearestSourceIndices(inSize: side, outSize: outSize)
    /// Padded-square index → source index along an axis of `size` pixels, nil on the padding.
    func unpadded(_ size: Int) -> [Int?] {
        let offset = (side - size) / 2
        return indices.map { (offset..<(offset + size)).contains($0) ? $0 - offset : nil }
    }
    return Tensor(shape: [outSize, outSize, channels],
                  scalars: gather(x, width: width, channels: channels, rows: unpadded(height), columns: unpadded(width)))
}

/// Pixels (rows[i], columns[j]) of `x` [_, width, channels] as [rows.count, columns.count,
/// channels]; a nil row or column gives zeros.
private func gather(_ x: UnsafeBufferPointer<Float>, width: Int, channels: Int, rows: [Int?], columns: [Int?]) -> [Float] {
    var out = [Float](repeating: 0, count: rows.count * columns.count * channels)
    out.withUnsafeMutableBufferPointer { out in
        for (oy, sy) in rows.enumerated() {
            guard let sy else { continue }
            for (ox, sx) in columns.enumerated() {
                guard let sx else { continue }
                let src = (sy * width + sx) * channels, dst = (oy * columns.count + ox) * channels
                for c in 0..<channels { out[dst + c] = x[src + c] }
            }
        }
    }
    return out
}

/// PyTorch's `nearest` source index for every output index of one axis.
public func nearestSourceIndices(inSize: Int, outSize: Int) -> [Int] {
    let scale = Float(inSize) / Float(outSize)
    return (0..<outSize).map { min(Int((Float($0) * scale).rounded(.down)), inSize - 1) }
}
