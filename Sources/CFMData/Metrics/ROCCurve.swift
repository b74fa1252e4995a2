/// The ROC curve of image scores for plotting: (0, 0), then one point per distinct score in
/// decreasing order (every sample scoring at least that value called anomalous), ending at (1, 1)
/// — the points whose trapezoid area `ROC.area` computes.
public struct ROCCurve: Sendable, Equatable {
    /// Increasing false-positive and true-positive rates.
    public let fpr: [Double], tpr: [Double]

    /// The curve of `scores` against `labels` (true = anomalous); nil when a class is absent.
    public init?(scores: [Float], labels: [Bool]) {
        precondition(scores.count == labels.count, "\(scores.count) scores but \(labels.count) labels")
        let positives = labels.filter { $0 }.count, negatives = labels.count - positives
        guard positives > 0, negatives > 0 else { return nil }
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        var fpr = [0.0], tpr = [0.0], tp = 0, fp = 0, i = 0
        while i < order.count {
            let score = scores[order[i]]
            while i < order.count && scores[order[i]] == score {
                if labels[order[i]] { tp += 1 } else { fp += 1 }
                i += 1
            }
            fpr.append(Double(fp) / Double(negatives))
            tpr.append(Double(tp) / Double(positives))
        }
        (self.fpr, self.tpr) = (fpr, tpr)
    }
}
