import CFMGeometry
import CFMTensor

/// A trivial, non-learned detector that the quality report puts next to the crossmodal method
/// (never used by the daemon): at each foreground pixel, how far its colour and its height above
/// the fitted support plane lie from the nominal parts' statistics.
///
/// ψ2D = √(mean over R, G, B of ((c − μc) / σc)²) with c in [0, 1]; ψ3D = |h − μh| / σh with h
/// the signed distance (m) of the pixel's point to the plane background removal fitted; the map
/// is ψ2D + ψ3D (a sum: either modality alone can reveal a defect), 0 where there is no point.
/// Smoothing and image score are the method's (`AnomalyScoring`), so the two differ only in what
/// they compare.
public struct NominalBaseline: Sendable, Equatable {
    /// Mean and standard deviation of the nominal foreground pixels' R, G, B in [0, 1].
    public var colourMean: SIMD3<Float>, colourStd: SIMD3<Float>
    /// Mean and standard deviation of their height above the support plane, metres.
    public var heightMean: Float, heightStd: Float
    /// Foreground pixels the statistics were taken over.
    public var pixels: Int

    /// Smallest standard deviations used (a quarter of an 8-bit grey level; 0.1 mm), so a
    /// perfectly uniform nominal part does not divide by zero.
    public static let minimumColourStd: Float = 1e-3, minimumHeightStd: Float = 1e-4

    /// Statistics over every foreground pixel of nominal `frames` (preprocessed with background
    /// removal, so each has its support plane).
    public static func fit(_ frames: some Sequence<PreprocessedFrame>) throws -> NominalBaseline {
        var sum = SIMD4<Double>.zero, squares = SIMD4<Double>.zero, count = 0
        for frame in frames {
            try forEachForegroundPixel(frame) { _, value in
                sum += value
                squares += value * value
                count += 1
            }
        }
        guard count > 1 else { throw DetectorError.badInput("no foreground pixels in the nominal frames to fit the baseline to") }
        let mean = sum / Double(count)
        let variance = pointwiseMax(squares / Double(count) - mean * mean, .zero)
        let std = SIMD4<Float>(variance.squareRoot())
        return NominalBaseline(colourMean: SIMD3(Float(mean.x), Float(mean.y), Float(mean.z)),
                               colourStd: pointwiseMax(SIMD3(std.x, std.y, std.z), SIMD3(repeating: minimumColourStd)),
                               heightMean: Float(mean.w), heightStd: max(std.w, minimumHeightStd), pixels: count)
    }

    /// ψ2D, ψ3D, the smoothed map ψ2D + ψ3D and its image score for one frame.
    public func detect(_ frame: PreprocessedFrame) throws -> Detection {
        let size = frame.rgb.width  // the model input's side
        var psi2d = Tensor(shape: [size, size]), psi3d = Tensor(shape: [size, size])
        var valid = 0
        try Self.forEachForegroundPixel(frame) { pixel, value in
            let z = (SIMD3(Float(value.x), Float(value.y), Float(value.z)) - colourMean) / colourStd
            psi2d.scalars[pixel] = ((z * z).sum() / 3).squareRoot()
            psi3d.scalars[pixel] = abs(Float(value.w) - heightMean) / heightStd
            valid += 1
        }
        let psi = Tensor(shape: [size, size], scalars: zip(psi2d.scalars, psi3d.scalars).map(+))
        let map = AnomalyScoring.smooth(psi, size: size)
        return Detection(psi2d: psi2d, psi3d: psi3d, anomalyMap: map, score: AnomalyScoring.imageScore(map), validPixels: valid)
    }

    /// Calls `body(pixel index, (R, G, B in [0, 1], height in m))` for each pixel with a point.
    private static func forEachForegroundPixel(_ frame: PreprocessedFrame,
                                               _ body: (Int, SIMD4<Double>) -> Void) throws {
        guard let plane = frame.background?.plane else {
            throw DetectorError.badInput("the baseline measures height above the support plane, and this frame has none "
                                         + "(background removal switched off or no plane found)")
        }
        let xyz = frame.input.xyz.scalars, rgb = frame.rgb.bytes
        for pixel in 0..<(xyz.count / 3) {
            let point = SIMD3<Double>(Double(xyz[3 * pixel]), Double(xyz[3 * pixel + 1]), Double(xyz[3 * pixel + 2]))
            guard point != .zero else { continue }
            body(pixel, SIMD4(Double(rgb[3 * pixel]) / 255, Double(rgb[3 * pixel + 1]) / 255,
                              Double(rgb[3 * pixel + 2]) / 255, plane.signedDistance(point)))
        }
    }
}
