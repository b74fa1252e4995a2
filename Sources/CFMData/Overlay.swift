import CFMTensor

/// Heat-map overlays for a person to look at: an anomaly map in a blue→red colour scale
/// blended over the RGB image, optionally with the ground-truth contour in white.
public enum Overlay {
    /// `map` [H, W] over `image` (H×W): values are divided by `scale` (e.g. the decision
    /// threshold, so that nominal regions stay blue) and clipped to [0, 1]; `contour` marks
    /// the boundary of a non-zero mask of the same size.
    public static func render(_ image: RGBImage, map: Tensor, scale: Float, contour: GrayImage? = nil) -> RGBImage {
        let (h, w) = (image.height, image.width)
        precondition(map.shape == [h, w], "map \(map.shape) does not match the \(h)×\(w) image")
        var out = image
        for p in 0..<(h * w) {
            let t = min(1, max(0, map.scalars[p] / max(scale, .leastNormalMagnitude)))
            let heat = colour(t), alpha = 0.25 + 0.4 * t
            for c in 0..<3 {
                out.bytes[3 * p + c] = UInt8((1 - alpha) * Float(image.bytes[3 * p + c]) + alpha * heat[c])
            }
        }
        if let contour {
            precondition(contour.height == h && contour.width == w, "contour mask does not match the image")
            for y in 0..<h {
                for x in 0..<w where contour.bytes[y * w + x] != 0 {
                    func outside(_ yy: Int, _ xx: Int) -> Bool {
                        yy < 0 || yy >= h || xx < 0 || xx >= w || contour.bytes[yy * w + xx] == 0
                    }
                    guard outside(y - 1, x) || outside(y + 1, x) || outside(y, x - 1) || outside(y, x + 1) else { continue }
                    for c in 0..<3 { out.bytes[3 * (y * w + x) + c] = 255 }
                }
            }
        }
        return out
    }

    /// A blue → cyan → yellow → red scale at t ∈ [0, 1], as 0…255 channel values.
    static func colour(_ t: Float) -> [Float] {
        let r = min(1, max(0, 2 * t - 0.5)), g = min(1, max(0, 1.5 - abs(4 * t - 2))), b = min(1, max(0, 1.2 - 2 * t))
        return [255 * r, 255 * g, 255 * b]
    }
}
