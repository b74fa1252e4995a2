import CFMModels
import CFMTensor

/// The two crossmodal mappers and the per-pixel comparison of observed and mapped
/// features: ψ2D and ψ3D at every unmasked pixel.
///
/// Pixels are processed in chunks across cores, so no full-frame per-pixel feature map is
/// ever materialised. The mappers' first layers run on the extractor outputs (784 tokens,
/// 1024 centres) and are interpolated with the features (exact: that layer is linear and so
/// commutes with the linear interpolation and pooling).
public struct CrossmodalScorer: Sendable {
    /// 2D → 3D (768 → D3D) and 3D → 2D (D3D → 768).
    public let rgbToXYZ: FeatureMapper, xyzToRGB: FeatureMapper
    /// Pixels per chunk: keeps a chunk's activations (~6 700 floats a pixel) in cache.
    static let chunkPixels = 128

    public init(rgbToXYZ: FeatureMapper, xyzToRGB: FeatureMapper) {
        precondition(rgbToXYZ.inFeatures == xyzToRGB.outFeatures && rgbToXYZ.outFeatures == xyzToRGB.inFeatures,
                     "mappers do not invert each other's dimensions")
        (self.rgbToXYZ, self.xyzToRGB) = (rgbToXYZ, xyzToRGB)
    }

    public var rgbDim: Int { rgbToXYZ.inFeatures }
    public var xyzDim: Int { rgbToXYZ.outFeatures }

    /// ψ2D and ψ3D [size, size] (0 on masked pixels) from patch tokens [grid², rgbDim] and
    /// centre features [groups, xyzDim], through the per-pixel combinations of each path.
    public func disagreement(rgbTokens: Tensor, rgb: PixelCombinations, pointFeatures: Tensor,
                             xyz: PixelCombinations) -> (psi2d: Tensor, psi3d: Tensor) {
        precondition(rgb.pixels == xyz.pixels, "both paths must cover the same pixels")
        let (d2, d3, h) = (rgbDim, xyzDim, rgbToXYZ.hidden)
        precondition(xyzToRGB.hidden == h, "mapper hidden widths differ")
        // First layers without bias on the sources; the bias is added per pixel after blending.
        var tokenHidden = [Float](repeating: 0, count: rgbTokens.shape[0] * h)
        rgbToXYZ.input.multiply(rows: rgbTokens.shape[0], x: rgbTokens.scalars, y: &tokenHidden)
        var pointHidden = [Float](repeating: 0, count: pointFeatures.shape[0] * h)
        xyzToRGB.input.multiply(rows: pointFeatures.shape[0], x: pointFeatures.scalars, y: &pointHidden)

        let size = rgb.size, count = rgb.pixels.count
        var psi2d = Tensor(shape: [size, size]), psi3d = Tensor(shape: [size, size])
        let n = Self.chunkPixels
        let perWorker = n * (2 * d2 + 2 * d3 + 2 * h)
        let scratch = ScratchBuffer<Float>(count: cpuCount * perWorker)
        psi2d.withUnsafeMutableBufferPointer { p2 in
            psi3d.withUnsafeMutableBufferPointer { p3 in
                let chunks = (count + n - 1) / n
                parallelWorkers(chunks) { worker, chunkRange in
                    let e2 = scratch[worker * perWorker], e3 = e2 + n * d2, m2 = e3 + n * d3, m3 = m2 + n * d2
                    let h1 = m3 + n * d3, h2 = h1 + n * h
                    for chunk in chunkRange {
                        let range = (chunk * n)..<min(count, (chunk + 1) * n)
                        rgb.gather(range, from: rgbTokens.scalars, width: d2, bias: nil, into: e2)
                        xyz.gather(range, from: pointFeatures.scalars, width: d3, bias: nil, into: e3)
                        rgb.gather(range, from: tokenHidden, width: h, bias: rgbToXYZ.input.bias, into: h1)
                        rgbToXYZ.finish(rows: range.count, firstLayer: h1, y: m3, scratch: h2)
                        xyz.gather(range, from: pointHidden, width: h, bias: xyzToRGB.input.bias, into: h1)
                        xyzToRGB.finish(rows: range.count, firstLayer: h1, y: m2, scratch: h2)
                        for (i, pixel) in rgb.pixels[range].enumerated() {
                            // The reference's mask: a 3D feature summing to exactly 0.
                            let observed = e3 + i * d3
                            guard sum(observed, count: d3) != 0 else { continue }
                            p2[pixel] = AnomalyScoring.normalizedDistance(m2 + i * d2, e2 + i * d2, count: d2)
                            p3[pixel] = AnomalyScoring.normalizedDistance(m3 + i * d3, observed, count: d3)
                        }
                    }
                }
            }
        }
        return (psi2d, psi3d)
    }

    /// FLOPs of `disagreement` for `pixels` unmasked pixels, `tokens` patches and `groups` centres.
    public func flops(pixels: Int, tokens: Int, groups: Int) -> Double {
        let h = Double(rgbToXYZ.hidden)
        return 2 * h * (Double(tokens * rgbDim) + Double(groups * xyzDim))
            + Double(pixels) * (rgbToXYZ.flopsPerRow - rgbToXYZ.input.flops(rows: 1)
                + xyzToRGB.flopsPerRow - xyzToRGB.input.flops(rows: 1))
    }
}
