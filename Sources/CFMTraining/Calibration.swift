import CFMDetector

/// Why a threshold could not be calibrated.
public enum CalibrationError: Error, Equatable, CustomStringConvertible {
    case tooFewSamples(samples: Int, needed: Int, rate: Double)
    case invalidRate(Double)

    public var description: String {
        switch self {
        case let .tooFewSamples(samples, needed, rate):
            "\(samples) nominal validation samples cannot support a false-reject rate of \(rate): at least \(needed) are needed "
                + "(add validation parts or raise --false-reject-rate to \(1 / Double(max(1, samples))) or more)"
        case let .invalidRate(rate): "false-reject rate \(rate) is not in (0, 1)"
        }
    }
}

/// The pass/reject threshold from nominal validation scores: the smallest threshold that
/// rejects at most `rate` of them (score > threshold ⇒ reject). Needs at least ⌈1/rate⌉
/// samples, so that the rate is observable at all.
public enum Calibrator {
    /// Refuses a rate outside (0, 1) or one that `samples` nominal scores cannot support —
    /// checkable before any sample is scored.
    public static func requireSupport(samples: Int, falseRejectRate rate: Double) throws {
        guard rate > 0, rate < 1 else { throw CalibrationError.invalidRate(rate) }
        let needed = Int((1 / rate - 1e-9).rounded(.up))
        guard samples >= max(needed, 1) else { throw CalibrationError.tooFewSamples(samples: samples, needed: needed, rate: rate) }
    }

    public static func calibrate(scores: [Float], falseRejectRate rate: Double) throws -> ModelManifest.Calibration {
        try requireSupport(samples: scores.count, falseRejectRate: rate)
        let sorted = scores.sorted(), n = sorted.count
        let allowed = Int((rate * Double(n)).rounded(.down))
        func quantile(_ q: Double) -> Float { sorted[min(n - 1, Int((q * Double(n - 1)).rounded()))] }
        return ModelManifest.Calibration(threshold: sorted[n - 1 - allowed], falseRejectRate: rate, samples: n,
                                         min: sorted[0], median: quantile(0.5), p99: quantile(0.99), max: sorted[n - 1])
    }
}
