import CFMTensor

/// Sparse per-pixel linear combinations of extractor outputs: how the features of the
/// Point-MAE centres and of the ViT patch grid become per-pixel features, for only the pixels
/// that are not masked (docs/architecture.md, "Aligning features to pixels").
///
/// Pixel `pixels[i]` (row-major index in the size×size map) is `Σ weights[t] · source[sources[t]]`
/// over its terms `t ∈ offsets[i]..<offsets[i+1]`. Because every step from extractor output
/// to pixel (3-NN blending, scatter, 3×3 pooling, adaptive pooling, bilinear upsampling) is
/// linear, their composition is one such combination per pixel — and a linear layer applied
/// to the sources commutes with it (which is why the mappers' first layer runs on the sources).
public struct PixelCombinations: Sendable {
    /// Side of the square pixel map.
    public let size: Int
    /// Row-major indices of the pixels that have a combination (the unmasked pixels).
    public let pixels: [Int]
    let offsets: [Int], sources: [Int32], weights: [Float]

    init(size: Int, pixels: [Int], offsets: [Int], sources: [Int32], weights: [Float]) {
        (self.size, self.pixels, self.offsets, self.sources, self.weights) = (size, pixels, offsets, sources, weights)
    }

    /// Combinations given term by term: pixel `pixels[i]` = Σ over `terms[i]` of weight · source.
    public init(size: Int, pixels: [Int], terms: [[(source: Int, weight: Float)]]) {
        precondition(pixels.count == terms.count, "one term list per pixel")
        self.init(size: size, pixels: pixels, offsets: terms.reduce(into: [0]) { $0.append($0.last! + $1.count) },
                  sources: terms.flatMap { $0.map { Int32($0.source) } }, weights: terms.flatMap { $0.map(\.weight) })
    }

    /// For each row `i` in `range`: `out[i − range.lowerBound] = Σ_t weight_t · source[row_t] (+ bias)`,
    /// source rows and output rows `width` wide. Single-threaded: callers split ranges.
    public func gather(_ range: Range<Int>, from source: UnsafePointer<Float>, width: Int,
                       bias: UnsafePointer<Float>?, into out: UnsafeMutablePointer<Float>) {
        for i in range {
            let o = out + (i - range.lowerBound) * width
            if let bias { o.update(from: bias, count: width) } else { o.update(repeating: 0, count: width) }
            for t in offsets[i]..<offsets[i + 1] {
                axpy(count: width, weights[t], source + Int(sources[t]) * width, o)
            }
        }
    }

    /// Transpose of `gather`: for each row `i` in `range`, adds `weight_t · rows[i − range.lowerBound]`
    /// to `source[row_t]` (back-propagation through the blend). Single-threaded.
    public func scatterAdd(_ range: Range<Int>, rows: UnsafePointer<Float>, width: Int,
                           into source: UnsafeMutablePointer<Float>) {
        for i in range {
            let r = rows + (i - range.lowerBound) * width
            for t in offsets[i]..<offsets[i + 1] {
                axpy(count: width, weights[t], r, source + Int(sources[t]) * width)
            }
        }
    }

    /// The combinations of the pixels at `indices` (positions in `pixels`), in that order.
    public func subset(_ indices: [Int]) -> PixelCombinations {
        var offsets = [0], sources: [Int32] = [], weights: [Float] = []
        for i in indices {
            sources += self.sources[self.offsets[i]..<self.offsets[i + 1]]
            weights += self.weights[self.offsets[i]..<self.offsets[i + 1]]
            offsets.append(sources.count)
        }
        return PixelCombinations(size: size, pixels: indices.map { pixels[$0] }, offsets: offsets, sources: sources, weights: weights)
    }

    /// The combinations written out as a channel-major map [width, size, size] (zeros on
    /// masked pixels) — for dumps and tests, not for the hot path.
    public func denseMap(from source: Tensor, width: Int) -> Tensor {
        var rows = [Float](repeating: 0, count: pixels.count * width)
        source.withUnsafeBufferPointer { gather(0..<pixels.count, from: $0.baseAddress!, width: width, bias: nil, into: &rows) }
        var map = Tensor(shape: [width, size, size])
        for (i, pixel) in pixels.enumerated() {
            for c in 0..<width { map.scalars[c * size * size + pixel] = rows[i * width + c] }
        }
        return map
    }
}

extension PixelCombinations {
    /// The 3D path: each foreground point blends its 3 nearest centres
    /// (`neighbors`, `weights`: [points, 3]); the blends are scattered to their pixels, 3×3
    /// average pooled without padding, then adaptive average pooled back to size×size.
    /// Pixels whose pooling window holds no foreground point are masked (their feature is 0).
    ///
    /// A pixel's terms are its window's centres in order of first appearance (taps row by
    /// row, then the 3 neighbours), each coefficient summed in that visiting order. Rows of
    /// pixels are built in parallel into per-chunk buffers and joined in row order; a
    /// per-worker table from centre to its term in the current pixel replaces searching the
    /// pixel's terms, so the result is the same whatever the chunking.
    public static func pointAlignment(size: Int, foregroundPixels: [Int], neighbors: [Int32], weights: [Float]) -> PixelCombinations {
        precondition(neighbors.count == 3 * foregroundPixels.count && weights.count == neighbors.count)
        var pointAt = [Int32](repeating: -1, count: size * size)
        for (p, pixel) in foregroundPixels.enumerated() { pointAt[pixel] = Int32(p) }
        let centreCount = Int(neighbors.max() ?? -1) + 1
        let taps = poolingTaps(size: size)
        /// One chunk of rows: its pixels, term counts per pixel, sources and coefficients.
        struct Rows {
            var pixels: [Int] = [], counts: [Int32] = [], sources: [Int32] = [], coefficients: [Float] = []
        }
        var chunks = [Rows](repeating: Rows(), count: cpuCount)
        // Per worker: the position + 1 of each centre among the current pixel's terms (0: absent).
        var termOf = [Int32](repeating: 0, count: cpuCount * max(1, centreCount))
        pointAt.withUnsafeBufferPointer { pointAt in
        neighbors.withUnsafeBufferPointer { neighbors in
        weights.withUnsafeBufferPointer { weights in
        chunks.withUnsafeMutableBufferPointer { chunks in
        termOf.withUnsafeMutableBufferPointer { termOf in
            parallelWorkers(size, minimumChunk: 16) { worker, rows in
                let slot = termOf.baseAddress! + worker * max(1, centreCount)
                var out = Rows()
                out.sources.reserveCapacity(rows.count * size * 16)
                out.coefficients.reserveCapacity(rows.count * size * 16)
                for y in rows {
                    for x in 0..<size {
                        let start = out.sources.count
                        for (iy, wy) in taps[y] {
                            for (ix, wx) in taps[x] {
                                let p = Int(pointAt[iy * size + ix])
                                guard p >= 0 else { continue }
                                for k in 0..<3 {
                                    let centre = neighbors[3 * p + k], w = wy * wx * weights[3 * p + k]
                                    let term = Int(slot[Int(centre)])
                                    if term > 0 {
                                        out.coefficients[start + term - 1] += w
                                    } else {
                                        out.sources.append(centre)
                                        out.coefficients.append(w)
                                        slot[Int(centre)] = Int32(out.sources.count - start)
                                    }
                                }
                            }
                        }
                        guard out.sources.count > start else { continue }
                        for t in start..<out.sources.count { slot[Int(out.sources[t])] = 0 }
                        out.pixels.append(y * size + x)
                        out.counts.append(Int32(out.sources.count - start))
                    }
                }
                chunks[worker] = out
            }
        }
        }
        }
        }
        }
        var pixels: [Int] = [], offsets = [0], sources: [Int32] = [], coefficients: [Float] = []
        pixels.reserveCapacity(chunks.reduce(0) { $0 + $1.pixels.count })
        offsets.reserveCapacity(pixels.capacity + 1)
        sources.reserveCapacity(chunks.reduce(0) { $0 + $1.sources.count })
        coefficients.reserveCapacity(sources.capacity)
        for chunk in chunks {
            pixels += chunk.pixels
            for count in chunk.counts { offsets.append(offsets.last! + Int(count)) }
            sources += chunk.sources
            coefficients += chunk.coefficients
        }
        return PixelCombinations(size: size, pixels: pixels, offsets: offsets, sources: sources, weights: coefficients)
    }

    /// Along one axis: the input taps of a 3-wide average (stride 1, no padding, size − 2
    /// outputs) followed by an adaptive average back to `size` (output i averages pooled
    /// [⌊i·(size−2)/size⌋, ⌈(i+1)·(size−2)/size⌉)).
    static func poolingTaps(size: Int) -> [[(index: Int, weight: Float)]] {
        let pooled = size - 2
        return (0..<size).map { i in
            let lo = i * pooled / size, hi = ((i + 1) * pooled + size - 1) / size
            var taps: [Int: Float] = [:]
            for j in lo..<hi {
                for d in 0..<3 { taps[j + d, default: 0] += 1 / Float(3 * (hi - lo)) }
            }
            return taps.sorted { $0.key < $1.key }.map { (index: $0.key, weight: $0.value) }
        }
    }

    /// Both paths over the same unmasked pixels: the 3D alignment of `pointAlignment` and the
    /// bilinear upsampling of a grid×grid token map at those pixels.
    public static func paths(size: Int, grid: Int, foregroundPixels: [Int], neighbors: [Int32], weights: [Float])
        -> (rgb: PixelCombinations, xyz: PixelCombinations) {
        let xyz = pointAlignment(size: size, foregroundPixels: foregroundPixels, neighbors: neighbors, weights: weights)
        return (bilinearUpsampling(grid: grid, size: size, pixels: xyz.pixels), xyz)
    }

    /// The 2D path: bilinear upsampling (PyTorch `align_corners=False`) of a grid×grid
    /// token map to size×size, at `pixels` only. Sources are token indices row·grid + col.
    public static func bilinearUpsampling(grid: Int, size: Int, pixels: [Int]) -> PixelCombinations {
        let taps = LinearTap.taps(inSize: grid, outSize: size)
        var sources = [Int32](repeating: 0, count: 4 * pixels.count), weights = [Float](repeating: 0, count: 4 * pixels.count)
        for (i, pixel) in pixels.enumerated() {
            let ty = taps[pixel / size], tx = taps[pixel % size]
            // Four terms: (row, column) = (i0, i0), (i0, i1), (i1, i0), (i1, i1).
            sources[4 * i] = Int32(ty.i0 * grid + tx.i0)
            sources[4 * i + 1] = Int32(ty.i0 * grid + tx.i1)
            sources[4 * i + 2] = Int32(ty.i1 * grid + tx.i0)
            sources[4 * i + 3] = Int32(ty.i1 * grid + tx.i1)
            weights[4 * i] = ty.w0 * tx.w0
            weights[4 * i + 1] = ty.w0 * tx.w1
            weights[4 * i + 2] = ty.w1 * tx.w0
            weights[4 * i + 3] = ty.w1 * tx.w1
        }
        return PixelCombinations(size: size, pixels: pixels, offsets: Array(stride(from: 0, through: 4 * pixels.count, by: 4)),
                                 sources: sources, weights: weights)
    }
}
