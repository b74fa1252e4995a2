/// Why a metric is undefined for a set of test images.
public enum MetricError: Error, Equatable, CustomStringConvertible {
    /// AUPRO needs at least one ground-truth region.
    case noAnomalousRegions
    /// FPRs need at least one anomaly-free pixel.
    case noNominalPixels

    public var description: String {
        switch self {
        case .noAnomalousRegions: "no ground-truth anomaly region in the test images"
        case .noNominalPixels: "no anomaly-free pixel in the test images"
        }
    }
}

/// The per-region-overlap curve of the MVTec 3D-AD protocol (docs/evaluation.md).
///
/// A pixel is called anomalous when its score is at least the threshold. For each threshold:
/// PRO = the mean, over the 8-connected ground-truth regions of all images, of the fraction of
/// the region called anomalous; FPR = the fraction of all anomaly-free pixels (of all images,
/// nominal ones included) called anomalous. The area up to an FPR limit is the trapezoid
/// integral of the piecewise linear curve, interpolated linearly at the limit, divided by the
/// limit (MVTec's `trapezoid(x, y, x_max)`).
public struct PROCurve: Sendable, Equatable {
    /// How thresholds are chosen.
    public enum Sampling: Sendable, Equatable {
        /// Every distinct score is a threshold; the curve starts at (0, 0) and ends at (1, 1).
        /// This is the MVTec 3D-AD evaluation code's `compute_pro`.
        case exact
        /// The CFM / M3DM / BTF evaluation code (`calculate_au_pro(…, num_thresholds=99)`):
        /// `n` thresholds at equidistant positions of the sorted anomaly-free scores
        /// (`np.linspace(0, N − 1, n).astype(int)`), FPR = 1 − (position + 1) / N, overlap =
        /// the fraction of a region scoring strictly above the threshold, plus the point (1, 1).
        /// Spaced evenly in FPR, so the area up to 1 % rests on about one point.
        case thresholds(Int)
    }

    /// Increasing false-positive rates and their PRO values.
    public let fpr: [Double], pro: [Double]
    /// Ground-truth regions and anomaly-free pixels the curve was computed over.
    public let regions: Int, nominalPixels: Int

    /// The FPR limits reported for MVTec 3D-AD: 30 %, 10 %, 5 %, 1 %.
    public static let limits: [Double] = [0.3, 0.1, 0.05, 0.01]

    public init(fpr: [Double], pro: [Double], regions: Int, nominalPixels: Int) {
        precondition(fpr.count == pro.count, "\(fpr.count) FPRs but \(pro.count) PROs")
        (self.fpr, self.pro, self.regions, self.nominalPixels) = (fpr, pro, regions, nominalPixels)
    }

    /// The curve of `maps` (one per image, row-major, no NaN) against `truths`, sorting all
    /// pixels once (linear-time radix sort) and walking them with running per-region counts.
    /// With `.exact`, points beyond the first one whose FPR reaches `maxFPR` are dropped (the
    /// areas up to `maxFPR` are unchanged).
    public init(maps: [[Float]], truths: [GroundTruthRegions], sampling: Sampling = .exact,
                maxFPR: Double = 1) throws(MetricError) {
        precondition(maps.count == truths.count, "\(maps.count) maps but \(truths.count) ground truths")
        var scores = [Float](), tags = [UInt32](), sizes = [Int]()
        let total = maps.reduce(0) { $0 + $1.count }
        scores.reserveCapacity(total)
        tags.reserveCapacity(total)
        for (map, truth) in zip(maps, truths) {
            precondition(map.count == truth.labels.count, "map of \(map.count) pixels, ground truth of \(truth.labels.count)")
            let base = UInt32(sizes.count)
            scores += map
            tags += truth.labels.lazy.map { $0 == 0 ? 0 : base + UInt32($0) }
            sizes += truth.sizes
        }
        let nominal = total - sizes.reduce(0, +)
        guard !sizes.isEmpty else { throw .noAnomalousRegions }
        guard nominal > 0 else { throw .noNominalPixels }
        let sorted = ScoreOrder.sortedDescending(scores, tags: tags)
        switch sampling {
        case .exact:
            self = Self.exact(sorted, sizes: sizes, nominal: nominal, maxFPR: maxFPR)
        case let .thresholds(n):
            precondition(n >= 2, "need at least 2 thresholds")
            self = Self.sampled(sorted, sizes: sizes, nominal: nominal, thresholds: n)
        }
    }

    /// Every distinct score, highest first: FPR = false positives / nominal pixels (exact
    /// integers), PRO = Σ over regions of hits / size, / regions.
    private static func exact(_ sorted: [UInt64], sizes: [Int], nominal: Int, maxFPR: Double) -> PROCurve {
        let inverseSize = sizes.map { 1 / Double($0) }
        var fpr: [Double] = [0], pro: [Double] = [0]
        var falsePositives = 0, overlapSum = 0.0
        let regions = Double(sizes.count)
        sorted.withUnsafeBufferPointer { s in
            var i = 0
            while i < s.count {
                let key = s[i] >> 32
                while i < s.count && s[i] >> 32 == key {
                    let tag = Int(s[i] & 0xFFFF_FFFF)
                    if tag == 0 { falsePositives += 1 } else { overlapSum += inverseSize[tag - 1] }
                    i += 1
                }
                let x = Double(falsePositives) / Double(nominal)
                fpr.append(x)
                pro.append(i == s.count ? 1 : min(1, overlapSum / regions))
                if maxFPR < 1 && x >= maxFPR { break }
            }
        }
        return PROCurve(fpr: fpr, pro: pro, regions: sizes.count, nominalPixels: nominal)
    }

    /// The CFM authors' sampled curve (see `Sampling.thresholds`).
    private static func sampled(_ sorted: [UInt64], sizes: [Int], nominal: Int, thresholds n: Int) -> PROCurve {
        // Descending keys of the anomaly-free pixels, and of each region's pixels.
        var nominalKeys = [UInt32]()
        nominalKeys.reserveCapacity(nominal)
        var regionKeys = sizes.map { [UInt32]() .reserving($0) }
        for item in sorted {
            let tag = Int(item & 0xFFFF_FFFF), key = UInt32(item >> 32)
            if tag == 0 { nominalKeys.append(key) } else { regionKeys[tag - 1].append(key) }
        }
        // Position p in the ascending order of the anomaly-free scores is nominalKeys[N − 1 − p].
        let step = Double(nominal - 1) / Double(n - 1)
        var fpr: [Double] = [], pro: [Double] = []
        for i in stride(from: n - 1, through: 0, by: -1) {
            let position = i == n - 1 ? nominal - 1 : Int(Double(i) * step)
            let threshold = nominalKeys[nominal - 1 - position]
            var sum = 0.0
            for keys in regionKeys {
                // Region pixels scoring above the threshold: those with a smaller descending key.
                sum += Double(partitionPoint(keys) { $0 >= threshold }) / Double(keys.count)
            }
            fpr.append(1 - Double(position + 1) / Double(nominal))
            pro.append(sum / Double(sizes.count))
        }
        fpr.append(1)
        pro.append(1)
        return PROCurve(fpr: fpr, pro: pro, regions: sizes.count, nominalPixels: nominal)
    }

    /// The area under the curve up to FPR `limit`, divided by `limit` (AUPRO@limit).
    public func normalizedArea(upTo limit: Double) -> Double {
        precondition(limit > 0, "the FPR limit must be positive")
        precondition(fpr.last.map { $0 >= limit } ?? false, "the curve stops at FPR \(fpr.last ?? 0), before \(limit)")
        var area = 0.0
        for i in 1..<fpr.count {
            let (x0, y0, x1, y1) = (fpr[i - 1], pro[i - 1], fpr[i], pro[i])
            if x0 >= limit { break }
            if x1 <= limit {
                area += (x1 - x0) * (y0 + y1) / 2
            } else {
                let y = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
                area += (limit - x0) * (y0 + y) / 2
                break
            }
        }
        return area / limit
    }
}

/// The first index of `sorted` (partitioned: all false, then all true) where `belongs` holds.
func partitionPoint<T>(_ sorted: [T], where belongs: (T) -> Bool) -> Int {
    var (lo, hi) = (0, sorted.count)
    while lo < hi {
        let mid = (lo + hi) / 2
        if belongs(sorted[mid]) { hi = mid } else { lo = mid + 1 }
    }
    return lo
}

extension Array {
    fileprivate func reserving(_ capacity: Int) -> Array {
        var copy = self
        copy.reserveCapacity(capacity)
        return copy
    }
}
