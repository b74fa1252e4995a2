/// The area under the ROC curve, as scikit-learn's `roc_auc_score` computes it: the curve
/// through (0, 0) and one point per distinct score (all samples scoring at least that value
/// are called positive), integrated by the trapezoid rule. Tied scores thus count half, as in
/// the Mann–Whitney U statistic.
///
/// Counts are integers and the area is accumulated exactly (as twice the area in units of
/// positives × negatives), so the result is the correctly rounded rational value.
public enum ROC {
    /// AUROC of `scores` against `labels` (true = anomalous); nil when one class is absent
    /// (scikit-learn raises then). Scores must not be NaN. O(N) after an O(N) radix sort.
    public static func area(scores: [Float], labels: [Bool]) -> Double? {
        precondition(scores.count == labels.count, "\(scores.count) scores but \(labels.count) labels")
        return area(sorted: ScoreOrder.sortedDescending(scores, tags: labels.map { $0 ? 1 : 0 }))
    }

    /// Pixel AUROC over every pixel of `maps`, a pixel being positive iff it lies in a
    /// ground-truth region. `maps[i]` and `truths[i]` describe one image.
    public static func pixelArea(maps: [[Float]], truths: [GroundTruthRegions]) -> Double? {
        precondition(maps.count == truths.count, "\(maps.count) maps but \(truths.count) ground truths")
        var scores = [Float](), tags = [UInt32]()
        let total = maps.reduce(0) { $0 + $1.count }
        scores.reserveCapacity(total)
        tags.reserveCapacity(total)
        for (map, truth) in zip(maps, truths) {
            precondition(map.count == truth.labels.count, "map of \(map.count) pixels, ground truth of \(truth.labels.count)")
            scores += map
            tags += truth.labels.lazy.map { $0 != 0 ? 1 : 0 }
        }
        return area(sorted: ScoreOrder.sortedDescending(scores, tags: tags))
    }

    /// AUROC of packed items sorted by descending score, tag 1 = positive.
    static func area(sorted items: [UInt64]) -> Double? {
        var tp = 0, fp = 0, lastTP = 0, lastFP = 0
        var twiceArea = 0  // Σ Δfp · (tp + lastTP)
        items.withUnsafeBufferPointer { s in
            var i = 0
            while i < s.count {
                let key = s[i] >> 32
                while i < s.count && s[i] >> 32 == key {
                    if s[i] & 0xFFFF_FFFF != 0 { tp += 1 } else { fp += 1 }
                    i += 1
                }
                twiceArea += (fp - lastFP) * (tp + lastTP)
                (lastTP, lastFP) = (tp, fp)
            }
        }
        guard tp > 0, fp > 0 else { return nil }
        return Double(twiceArea) / (2 * Double(tp) * Double(fp))
    }
}
