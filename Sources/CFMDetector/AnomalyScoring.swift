import CFMTensor

/// Turning the disagreement of observed and mapped features into a map and a score
/// (docs/architecture.md, "Anomaly map and score").
public enum AnomalyScoring {
    /// ‖normalize(a) − normalize(b)‖₂ of two `count`-vectors, normalize(x) = x / max(‖x‖, 1e−12).
    public static func normalizedDistance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        CFMTensor.normalizedDistance(a, b, count: count)
    }

    /// Five passes of a 5×5 box filter, then three of a 7×7 one (zero padding, ÷25 / ÷49)
    /// on a `size`×`size` map.
    public static func smooth(_ map: Tensor, size: Int) -> Tensor {
        var current = map, next = Tensor(shape: map.shape)
        for (kernel, passes) in [(5, 5), (7, 3)] {
            for _ in 0..<passes {
                current.withUnsafeBufferPointer { src in
                    next.withUnsafeMutableBufferPointer { dst in
                        averagePool(src.baseAddress!, channels: 1, height: size, width: size, kernel: kernel,
                                    padding: kernel / 2, out: dst.baseAddress!)
                    }
                }
                swap(&current, &next)
            }
        }
        return current
    }

    /// Image score of a smoothed map: max / √(mean of the non-zero values); 0 for an all-zero map.
    public static func imageScore(_ map: Tensor) -> Float {
        var sum = 0.0, nonZero = 0, peak: Float = 0
        for v in map.scalars where v != 0 {
            sum += Double(v)
            nonZero += 1
            peak = max(peak, v)
        }
        guard nonZero > 0, sum > 0 else { return 0 }
        return peak / Float((sum / Double(nonZero)).squareRoot())
    }
}
