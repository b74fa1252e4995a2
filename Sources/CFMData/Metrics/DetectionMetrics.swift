import Foundation

/// The MVTec 3D-AD metrics of one set of test images (docs/evaluation.md). A metric that the set
/// cannot define (one class only, no ground-truth region) is nil.
public struct DetectionMetrics: Sendable, Equatable {
    /// Images, anomaly-free images, and anomalous ones.
    public var samples: Int, nominal: Int, anomalous: Int
    /// Ground-truth regions over all images.
    public var regions: Int
    /// AUROC of the image scores.
    public var imageAUROC: Double?
    /// AUROC over all pixels of all images.
    public var pixelAUROC: Double?
    /// AUPRO at each FPR limit of `PROCurve.limits`, in that order (nil entries when undefined).
    public var auPRO: [Double?]

    /// A JSON-ready dictionary: `samples`, `nominal`, `anomalous`, `regions`, `i_auroc`,
    /// `p_auroc`, `aupro` {"30%", "10%", "5%", "1%"}; undefined values are `null`.
    public var jsonObject: [String: Any] {
        func value(_ v: Double?) -> Any { v.flatMap { $0.isFinite ? $0 : nil } ?? NSNull() }
        var aupro = [String: Any]()
        for (limit, area) in zip(PROCurve.limits, auPRO) { aupro[Self.percent(limit)] = value(area) }
        return ["samples": samples, "nominal": nominal, "anomalous": anomalous, "regions": regions,
                "i_auroc": value(imageAUROC), "p_auroc": value(pixelAUROC), "aupro": aupro]
    }

    /// "30%" for 0.3.
    public static func percent(_ limit: Double) -> String {
        let p = limit * 100
        return p == p.rounded() ? "\(Int(p))%" : "\(p)%"
    }
}

/// One scored test image: its image score, the per-pixel maps it is judged by (they may be
/// normalised differently for P-AUROC and AUPRO) and its ground truth on the map's grid.
public struct EvaluatedImage: Sendable {
    public var defect: String, id: String
    public var score: Float
    /// The map pixel AUROC ranks, row-major.
    public var pixelMap: [Float]
    /// The map AUPRO thresholds, row-major.
    public var regionMap: [Float]
    public var truth: GroundTruthRegions

    public init(defect: String, id: String, score: Float, pixelMap: [Float], regionMap: [Float], truth: GroundTruthRegions) {
        precondition(pixelMap.count == truth.labels.count && regionMap.count == truth.labels.count,
                     "maps of \(pixelMap.count) and \(regionMap.count) pixels, ground truth of \(truth.labels.count)")
        (self.defect, self.id, self.score, self.pixelMap, self.regionMap, self.truth) = (defect, id, score, pixelMap, regionMap, truth)
    }

    /// Anomalous iff its ground truth has a region (an image of a defect folder whose mask,
    /// resized, is empty counts as nominal for the pixel metrics but as anomalous for I-AUROC).
    var isAnomalousImage: Bool { defect != MVTec3DClass.nominal }
}

/// The test set's metrics, overall and per defect type (each defect's images together with
/// all anomaly-free images, the usual breakdown of MVTec tables).
public struct EvaluationReport: Sendable {
    public var overall: DetectionMetrics
    /// Defect type → metrics of that defect's images plus the `good` ones.
    public var byDefect: [String: DetectionMetrics]
    /// The PRO sampling used.
    public var sampling: PROCurve.Sampling

    /// Computes every metric of `images`.
    public init(_ images: [EvaluatedImage], sampling: PROCurve.Sampling = .exact) {
        self.sampling = sampling
        overall = Self.metrics(images, sampling: sampling)
        var byDefect = [String: DetectionMetrics]()
        let nominal = images.filter { !$0.isAnomalousImage }
        for defect in Set(images.filter(\.isAnomalousImage).map(\.defect)) {
            byDefect[defect] = Self.metrics(nominal + images.filter { $0.defect == defect }, sampling: sampling)
        }
        self.byDefect = byDefect
    }

    /// The metrics of one set of images.
    public static func metrics(_ images: [EvaluatedImage], sampling: PROCurve.Sampling) -> DetectionMetrics {
        let truths = images.map(\.truth)
        let maxLimit = PROCurve.limits.max()!
        let curve = try? PROCurve(maps: images.map(\.regionMap), truths: truths, sampling: sampling,
                                  maxFPR: sampling == .exact ? maxLimit : 1)
        let anomalous = images.filter(\.isAnomalousImage).count
        return DetectionMetrics(
            samples: images.count, nominal: images.count - anomalous, anomalous: anomalous,
            regions: truths.reduce(0) { $0 + $1.count },
            imageAUROC: ROC.area(scores: images.map(\.score), labels: images.map(\.isAnomalousImage)),
            pixelAUROC: ROC.pixelArea(maps: images.map(\.pixelMap), truths: truths),
            auPRO: PROCurve.limits.map { limit in curve.map { $0.normalizedArea(upTo: limit) } })
    }
}
