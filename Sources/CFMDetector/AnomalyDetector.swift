import CFMGeometry
import CFMModels
import CFMTensor
import Foundation

/// What the extractors take: one preprocessed frame, square at the model input size.
public struct ModelInput: Sendable {
    /// Normalised RGB [3, S, S].
    public var rgb: Tensor
    /// Organized point cloud [S, S, 3] in metres after background removal; (0, 0, 0) = no point.
    public var xyz: Tensor

    public init(rgb: Tensor, xyz: Tensor) {
        (self.rgb, self.xyz) = (rgb, xyz)
    }
}

/// Everything the frozen extractors produce for one frame.
public struct FrameFeatures: Sendable {
    /// ViT patch tokens [grid², 768] after the final norm.
    public var rgbTokens: Tensor
    /// Foreground points [P, 3] in row-major pixel order, and their pixels.
    public var foreground: ForegroundPoints
    /// Farthest-point-sampled centres (indices into the foreground points) [G, 3].
    public var centers: FarthestPointSample
    /// Each centre's nearest foreground points, ascending distance: [G · members].
    public var groups: NearestNeighbours
    /// Point-MAE features per centre [G, D3D].
    public var pointFeatures: Tensor
    /// Each foreground point's 3 nearest centres and blend weights.
    public var interpolation: InverseDistanceInterpolation
}

/// The per-frame result of the detector.
public struct Detection: Sendable {
    /// ψ2D and ψ3D [S, S] before smoothing (0 on masked pixels).
    public var psi2d: Tensor, psi3d: Tensor
    /// The anomaly map [S, S] after smoothing: ψ2D and ψ3D combined by the bundle's aggregation
    /// (`ScoringDefinition`; ψ2D · ψ3D by default).
    public var anomalyMap: Tensor
    /// max(map) / √(mean of its non-zero values).
    public var score: Float
    /// Unmasked pixels (where the 3D feature is defined).
    public var validPixels: Int
}

/// How ψ2D and ψ3D become the anomaly map and the image score; recorded in the manifest.
public struct ScoringDefinition: Codable, Sendable, Equatable {
    /// How the two disagreement maps combine per pixel, before smoothing (the variants the
    /// paper compares). ψ2D is the disagreement of the observed 2D features with those the
    /// 3D→2D mapper predicts from the geometry, ψ3D that of the observed 3D features with the
    /// 2D→3D mapper's prediction; each lies in [0, 2]. Both are 0 on masked pixels, and so is
    /// every combination: all variants share the mask.
    public enum Aggregation: String, Codable, Sendable, CaseIterable {
        /// ψ2D · ψ3D: high only where both directions disagree; the method's map (the default).
        case product
        /// ψ2D + ψ3D: either direction's disagreement raises the pixel, in [0, 4].
        case sum
        /// max(ψ2D, ψ3D): the stronger direction decides, in [0, 2].
        case max
        /// ψ2D alone: only the colour features that the geometry fails to predict.
        case only2D = "2d_only"
        /// ψ3D alone: only the geometric features that the colour fails to predict.
        case only3D = "3d_only"

        /// The combined map, element-wise over ψ2D and ψ3D of equal shape ([S, S]).
        public func combine(psi2d: Tensor, psi3d: Tensor) -> Tensor {
            precondition(psi2d.shape == psi3d.shape, "ψ2D \(psi2d.shape) and ψ3D \(psi3d.shape) differ in shape")
            return switch self {
            case .product: Tensor(shape: psi2d.shape, scalars: zip(psi2d.scalars, psi3d.scalars).map(*))
            case .sum: Tensor(shape: psi2d.shape, scalars: zip(psi2d.scalars, psi3d.scalars).map(+))
            case .max: Tensor(shape: psi2d.shape, scalars: zip(psi2d.scalars, psi3d.scalars).map(Swift.max))
            case .only2D: psi2d
            case .only3D: psi3d
            }
        }
    }

    /// How the smoothed map becomes one score.
    public enum ImageScore: String, Codable, Sendable, CaseIterable {
        /// max(map) / √(mean of its non-zero values) (`AnomalyScoring.imageScore`).
        case maxOverRootMean = "max_over_sqrt_mean"
    }

    public var aggregation: Aggregation = .product
    public var imageScore: ImageScore = .maxOverRootMean

    public init(aggregation: Aggregation = .product) { self.aggregation = aggregation }

    /// The anomaly map [size, size] (the aggregation of ψ2D and ψ3D [size, size], smoothed)
    /// and the image score of that map.
    public func apply(psi2d: Tensor, psi3d: Tensor, size: Int) -> (map: Tensor, score: Float) {
        let map = AnomalyScoring.smooth(aggregation.combine(psi2d: psi2d, psi3d: psi3d), size: size)
        let score = switch imageScore {
        case .maxOverRootMean: AnomalyScoring.imageScore(map)
        }
        return (map, score)
    }

    enum CodingKeys: String, CodingKey { case aggregation, imageScore = "image_score" }
}

/// Everything a detector reads and never changes: the extractors pruned to a tier, the
/// mappers, the manifest and what it fixes (preprocessing, scoring). Loaded once per process
/// and shared by every inference worker (the tensors are copy-on-write buffers that no one
/// writes, so each `AnomalyDetector` made from it adds only its workspaces).
public struct DetectorWeights: Sendable {
    public let tier: Tier
    public let vit: VisionTransformer
    public let pointMAE: PointMAE
    /// Absent when only features are wanted (`cfm extract` without a model).
    public let scorer: CrossmodalScorer?
    /// The model bundle's manifest, when the mappers came with one.
    public let manifest: ModelManifest?
    /// What frames are preprocessed with: the manifest's, else the defaults.
    public let preprocessing: PreprocessOptions
    /// How the map and the score are formed: the manifest's, else the only definition.
    public let scoring: ScoringDefinition
    /// The precision the extractors' and mappers' GEMM-heavy layers were loaded at (their bf16
    /// weight copies, when bf16, live in those layers: packed once, immutable, shared).
    public let precision: Precision

    public init(tier: Tier, vit: VisionTransformer, pointMAE: PointMAE, scorer: CrossmodalScorer?, manifest: ModelManifest? = nil,
                precision: Precision = .fp32) {
        if let scorer {
            precondition(scorer.rgbDim == vit.config.dim && scorer.xyzDim == pointMAE.featureDim,
                         "mapper dimensions do not fit the extractors")
        }
        (self.tier, self.vit, self.pointMAE, self.scorer, self.manifest) = (tier, vit, pointMAE, scorer, manifest)
        self.precision = precision
        preprocessing = manifest?.preprocessOptions ?? PreprocessOptions()
        scoring = manifest?.scoringDefinition ?? ScoringDefinition()
    }

    /// The preprocessor of frames this detector scores.
    public var preprocessor: Preprocessor { Preprocessor(options: preprocessing) }
}

/// One inference worker: shared `DetectorWeights` and its own workspaces. Turns a
/// preprocessed frame into features, an anomaly map and a score, with per-stage timings.
///
/// Reusable across frames without reallocating its large buffers. Not thread-safe: one
/// caller at a time (each service worker owns one).
public final class AnomalyDetector {
    public let weights: DetectorWeights
    private var vitWorkspace: VisionTransformer.Workspace
    private var pointWorkspace: PointMAE.Workspace

    public init(weights: DetectorWeights) {
        self.weights = weights
        vitWorkspace = weights.vit.makeWorkspace()
        pointWorkspace = weights.pointMAE.makeWorkspace()
    }

    public convenience init(tier: Tier, vit: VisionTransformer, pointMAE: PointMAE, scorer: CrossmodalScorer?,
                            manifest: ModelManifest? = nil) {
        self.init(weights: DetectorWeights(tier: tier, vit: vit, pointMAE: pointMAE, scorer: scorer, manifest: manifest))
    }

    public var tier: Tier { weights.tier }
    public var vit: VisionTransformer { weights.vit }
    public var pointMAE: PointMAE { weights.pointMAE }
    public var scorer: CrossmodalScorer? { weights.scorer }
    public var manifest: ModelManifest? { weights.manifest }

    /// Side of the square model input (224).
    public var inputSize: Int { vit.config.imageSize }

    /// Runs both extractors on `input`, timing `extract2d`, `fps`, `knn`, `extract3d` and
    /// `interpolate` into `times`.
    public func extract(_ input: ModelInput, times: inout StageTimes) throws -> FrameFeatures {
        let s = inputSize
        guard input.rgb.shape == [3, s, s] else { throw DetectorError.badInput("RGB input is \(input.rgb.shape), expected [3, \(s), \(s)]") }
        guard input.xyz.shape == [s, s, 3] else { throw DetectorError.badInput("XYZ input is \(input.xyz.shape), expected [\(s), \(s), 3]") }
        guard input.xyz.scalars.allSatisfy(\.isFinite) else { throw DetectorError.nonFinite("XYZ input") }
        // Beyond ±1e6 m (nothing a sensor measures) features are meaningless, and past ~1e19 m
        // they overflow Float32 into NaN maps that would score 0 and pass.
        guard input.xyz.scalars.allSatisfy({ abs($0) <= 1e6 }) else { throw DetectorError.badInput("XYZ input has a coordinate beyond ±1e6 m") }

        let rgbTokens = times.measure("extract2d") { vit.patchTokens(image: input.rgb, workspace: &vitWorkspace) }
        let foreground = ForegroundPoints(of: try OrganizedCloud(input.xyz))
        let c = pointMAE.config
        guard foreground.count >= c.members else { throw DetectorError.tooFewPoints(found: foreground.count, needed: c.members) }
        let centers = try times.measure("fps") { try farthestPointSampling(foreground.points, count: c.groups) }
        let (groups, neighborhoods) = try times.measure("knn") {
            let groups = try NearestNeighbours(of: centers.centres, in: foreground.points, k: c.members)
            return (groups, try groups.neighbourhoods(of: centers.centres, in: foreground.points))
        }
        let pointFeatures = times.measure("extract3d") {
            pointMAE.features(neighborhoods: neighborhoods, centers: centers.centres, workspace: &pointWorkspace)
        }
        let interpolation = try times.measure("interpolate") {
            try InverseDistanceInterpolation(points: foreground.points, centres: centers.centres)
        }
        return FrameFeatures(rgbTokens: rgbTokens, foreground: foreground, centers: centers, groups: groups,
                             pointFeatures: pointFeatures, interpolation: interpolation)
    }

    /// Per-pixel combinations of both paths for `features`: the unmasked pixels and how
    /// each one blends centres (3D) and patch tokens (2D).
    public func pixelCombinations(_ features: FrameFeatures) -> (rgb: PixelCombinations, xyz: PixelCombinations) {
        PixelCombinations.paths(size: inputSize, grid: vit.config.grid, foregroundPixels: features.foreground.pixelIndices,
                                neighbors: features.interpolation.indices.map(Int32.init), weights: features.interpolation.weights)
    }

    /// Maps, ψ and score of extracted `features`, timing `align`, `map` and `score`.
    public func score(_ features: FrameFeatures, times: inout StageTimes) -> Detection {
        guard let scorer else { preconditionFailure("score(_:) needs a detector loaded with mappers") }
        let (rgb, xyz) = times.measure("align") { pixelCombinations(features) }
        let (psi2d, psi3d) = times.measure("map") {
            scorer.disagreement(rgbTokens: features.rgbTokens, rgb: rgb, pointFeatures: features.pointFeatures, xyz: xyz)
        }
        return times.measure("score") {
            let (map, score) = weights.scoring.apply(psi2d: psi2d, psi3d: psi3d, size: inputSize)
            return Detection(psi2d: psi2d, psi3d: psi3d, anomalyMap: map, score: score, validPixels: xyz.pixels.count)
        }
    }

    /// `extract` then `score`.
    public func detect(_ input: ModelInput, times: inout StageTimes) throws -> (Detection, FrameFeatures) {
        let features = try extract(input, times: &times)
        return (score(features, times: &times), features)
    }
}
