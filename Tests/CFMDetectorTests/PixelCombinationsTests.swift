@testable import CFMDetector
import CFMTensor
import Testing

/// The combinations' builders against plain one-pixel-at-a-time constructions of the same
/// definitions: identical pixels, terms (sources in order) and coefficients, bit for bit.
@Suite struct PixelCombinationsTests {
    /// A frame-sized foreground: the pixels of an ellipse (~40 % of a size×size map, with a
    /// hole and a ragged edge) and, per point, 3 distinct centres of `centres` near it in
    /// space (so neighbouring pixels share centres, as after 3-NN) with random weights.
    static func foreground(size: Int, centres: Int, seed: UInt64) -> (pixels: [Int], neighbors: [Int32], weights: [Float]) {
        var random = SeededRandom(seed: seed)
        var pixels: [Int] = [], neighbors: [Int32] = [], weights: [Float] = []
        let side = Int(Double(centres).squareRoot())
        for y in 0..<size {
            for x in 0..<size {
                let u = Float(x - size / 2) / Float(size) * 2.6, v = Float(y - size / 2) / Float(size) * 3.2
                let r = u * u + v * v
                guard r < 1 + 0.1 * random.uniform(), r > 0.02 else { continue }
                pixels.append(y * size + x)
                let cell = min(side - 1, y * side / size) * side + min(side - 1, x * side / size)
                let picks = [cell, min(centres - 1, cell + 1 + Int(random.uniform() * 3)), max(0, cell - side)]
                let distinct = Set(picks).count == 3 ? picks : [cell, (cell + 1) % centres, (cell + 2) % centres]
                neighbors += distinct.map { Int32($0) }
                let w = (0..<3).map { _ in random.uniform(0.01, 1) }
                weights += w.map { $0 / w.reduce(0, +) }
            }
        }
        return (pixels, neighbors, weights)
    }

    /// `pointAlignment` written directly: each pixel's window taps in order, each term found
    /// by a search of the pixel's terms so far.
    static func referenceAlignment(size: Int, pixels foreground: [Int], neighbors: [Int32], weights: [Float])
        -> (pixels: [Int], offsets: [Int], sources: [Int32], weights: [Float]) {
        var pointAt = [Int](repeating: -1, count: size * size)
        for (p, pixel) in foreground.enumerated() { pointAt[pixel] = p }
        let taps = PixelCombinations.poolingTaps(size: size)
        var pixels: [Int] = [], offsets = [0], sources: [Int32] = [], coefficients: [Float] = []
        for y in 0..<size {
            for x in 0..<size {
                var terms: [(source: Int32, weight: Float)] = []
                for (iy, wy) in taps[y] {
                    for (ix, wx) in taps[x] where pointAt[iy * size + ix] >= 0 {
                        let p = pointAt[iy * size + ix]
                        for k in 0..<3 {
                            let w = wy * wx * weights[3 * p + k]
                            if let t = terms.firstIndex(where: { $0.source == neighbors[3 * p + k] }) {
                                terms[t].weight += w
                            } else {
                                terms.append((neighbors[3 * p + k], w))
                            }
                        }
                    }
                }
                guard !terms.isEmpty else { continue }
                pixels.append(y * size + x)
                sources += terms.map(\.source)
                coefficients += terms.map(\.weight)
                offsets.append(sources.count)
            }
        }
        return (pixels, offsets, sources, coefficients)
    }

    @Test(arguments: [(224, 1024), (37, 16), (5, 3)] as [(Int, Int)])
    func pointAlignmentMatchesThePlainConstruction(_ size: Int, _ centres: Int) {
        let (foreground, neighbors, weights) = Self.foreground(size: size, centres: centres, seed: UInt64(size))
        let built = PixelCombinations.pointAlignment(size: size, foregroundPixels: foreground, neighbors: neighbors, weights: weights)
        let expected = Self.referenceAlignment(size: size, pixels: foreground, neighbors: neighbors, weights: weights)
        #expect(!expected.pixels.isEmpty)
        #expect(built.pixels == expected.pixels)
        #expect(built.offsets == expected.offsets)
        #expect(built.sources == expected.sources)
        #expect(built.weights.map(\.bitPattern) == expected.weights.map(\.bitPattern))
    }

    @Test func bilinearUpsamplingMatchesThePlainConstruction() {
        let (grid, size) = (28, 224)
        let (foreground, neighbors, weights) = Self.foreground(size: size, centres: 1024, seed: 2)
        let pixels = PixelCombinations.pointAlignment(size: size, foregroundPixels: foreground, neighbors: neighbors, weights: weights).pixels
        let built = PixelCombinations.bilinearUpsampling(grid: grid, size: size, pixels: pixels)
        let taps = LinearTap.taps(inSize: grid, outSize: size)
        var sources: [Int32] = [], coefficients: [Float] = []
        for pixel in pixels {
            let ty = taps[pixel / size], tx = taps[pixel % size]
            for (row, wy) in [(ty.i0, ty.w0), (ty.i1, ty.w1)] {
                for (col, wx) in [(tx.i0, tx.w0), (tx.i1, tx.w1)] {
                    sources.append(Int32(row * grid + col))
                    coefficients.append(wy * wx)
                }
            }
        }
        #expect(built.pixels == pixels)
        #expect(built.offsets == Array(stride(from: 0, through: sources.count, by: 4)))
        #expect(built.sources == sources)
        #expect(built.weights.map(\.bitPattern) == coefficients.map(\.bitPattern))
    }
}
