import Foundation

/// What a decision threshold does on a labelled test set: the confusion matrix in the line's terms
/// (a part is rejected iff its score > threshold, as the daemon decides) and the two error rates a
/// line engineer trades off.
public struct ThresholdRates: Codable, Sendable, Equatable {
    /// Score units; rejected ⇔ score > threshold.
    public var threshold: Float
    /// Defective parts rejected (true positives).
    public var rejectedDefective: Int
    /// Defective parts passed (misses, false negatives).
    public var passedDefective: Int
    /// Good parts rejected (false rejects, false positives).
    public var rejectedGood: Int
    /// Good parts passed (true negatives).
    public var passedGood: Int
    /// rejected good / good parts; nil without good parts.
    public var falseRejectRate: Double?
    /// passed defective / defective parts; nil without defective parts.
    public var missRate: Double?

    /// The counts and rates of `scores` against `anomalous` (true = defective part) at `threshold`.
    public init(scores: [Float], anomalous: [Bool], threshold: Float) {
        precondition(scores.count == anomalous.count, "\(scores.count) scores but \(anomalous.count) labels")
        var counts = (rejectedDefective: 0, passedDefective: 0, rejectedGood: 0, passedGood: 0)
        for (score, defective) in zip(scores, anomalous) {
            switch (defective, score > threshold) {
            case (true, true): counts.rejectedDefective += 1
            case (true, false): counts.passedDefective += 1
            case (false, true): counts.rejectedGood += 1
            case (false, false): counts.passedGood += 1
            }
        }
        self.threshold = threshold
        (rejectedDefective, passedDefective, rejectedGood, passedGood) = counts
        let (good, defective) = (counts.rejectedGood + counts.passedGood, counts.rejectedDefective + counts.passedDefective)
        falseRejectRate = good > 0 ? Double(counts.rejectedGood) / Double(good) : nil
        missRate = defective > 0 ? Double(counts.passedDefective) / Double(defective) : nil
    }

    private enum CodingKeys: String, CodingKey {
        case threshold, rejectedDefective = "rejected_defective", passedDefective = "passed_defective",
             rejectedGood = "rejected_good", passedGood = "passed_good", falseRejectRate = "false_reject_rate",
             missRate = "miss_rate"
    }

    /// Encodes every key, undefined rates as null.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(threshold, forKey: .threshold)
        try container.encode(rejectedDefective, forKey: .rejectedDefective)
        try container.encode(passedDefective, forKey: .passedDefective)
        try container.encode(rejectedGood, forKey: .rejectedGood)
        try container.encode(passedGood, forKey: .passedGood)
        try container.encode(falseRejectRate, forKey: .falseRejectRate)
        try container.encode(missRate, forKey: .missRate)
    }

    /// The same keys as a JSON-ready dictionary (for metrics.json written with JSONSerialization):
    /// `threshold`, `rejected_defective`, `passed_defective`, `rejected_good`, `passed_good`,
    /// `false_reject_rate`, `miss_rate`.
    public var jsonObject: [String: Any] {
        func value(_ v: Double?) -> Any { v ?? NSNull() }
        return ["threshold": Double("\(threshold)") ?? Double(threshold), "rejected_defective": rejectedDefective,
                "passed_defective": passedDefective, "rejected_good": rejectedGood, "passed_good": passedGood,
                "false_reject_rate": value(falseRejectRate), "miss_rate": value(missRate)]
    }
}
