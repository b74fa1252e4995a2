import CFMTensor

extension AnomalyScoring {
    /// The per-pixel map AUPRO thresholds (docs/evaluation.md): the smoothed map divided by the
    /// mean of its non-zero values, so every image's map is on the scale of its own typical
    /// disagreement. An all-zero map stays zero.
    public static func regionMap(_ map: Tensor) -> [Float] {
        var sum = 0.0, nonZero = 0
        for v in map.scalars where v != 0 { sum += Double(v); nonZero += 1 }
        guard nonZero > 0, sum != 0 else { return map.scalars }
        let mean = Float(sum / Double(nonZero))
        return map.scalars.map { $0 / mean }
    }

    /// The per-pixel map P-AUROC ranks (docs/evaluation.md): the smoothed map divided by the
    /// square root of the mean of all its values. An all-zero map stays zero.
    public static func pixelMap(_ map: Tensor) -> [Float] {
        let sum = map.scalars.reduce(0.0) { $0 + Double($1) }
        guard sum > 0 else { return map.scalars }
        let root = Float((sum / Double(map.count)).squareRoot())
        return map.scalars.map { $0 / root }
    }
}
