import CFMModels
import CFMTensor
import Foundation

/// File names inside a model bundle directory (`cfm train` output).
public enum BundleFile {
    public static let rgbToXYZ = "mapper_2d_to_3d.safetensors"
    public static let xyzToRGB = "mapper_3d_to_2d.safetensors"
    public static let manifest = "manifest.yaml"
}

/// Why a model could not be loaded for a tier.
public enum ModelLoadingError: Error, Equatable, CustomStringConvertible {
    /// A mapper file whose dimensions belong to another tier.
    case wrongTier(file: String, expectedXYZDim: Int, foundXYZDim: Int, tier: Tier)

    public var description: String {
        switch self {
        case let .wrongTier(file, expected, found, tier):
            "\(file): mapper for \(found)-d 3D features, but tier \(tier.rawValue) produces \(expected)-d ones (trained for another tier?)"
        }
    }
}

/// Which precision a detector is loaded at.
public enum PrecisionChoice: Sendable, Equatable {
    /// The bundle's (`ModelManifest.scoringPrecision`; fp32 without a manifest).
    case bundle
    /// Must equal the bundle's, else refused (the serve config's `model.precision`); used as
    /// given for bare mapper files.
    case required(Precision)
    /// This one, whatever the bundle was calibrated at (`--precision`: calibration, comparisons).
    case run(Precision)
}

/// Why a detector cannot be set up from what was given.
public enum DetectorSetupError: Error, Equatable, CustomStringConvertible {
    /// Neither a manifest nor the caller names the tier.
    case noTier(model: String?)

    public var description: String {
        switch self {
        case let .noTier(model):
            (model.map { "\($0) has no \(BundleFile.manifest) (bare mapper files)" } ?? "no model bundle") + ": give the tier"
        }
    }
}

extension DetectorWeights {
    /// Loads the extractors of `extractors` and, when `model` is given, the two mappers of
    /// that bundle. A bundle with a manifest is checked first (mapper and extractor checksums)
    /// and sets the tier, the BatchNorm mode, the preprocessing and the scoring; a `tier` or
    /// `batchNorm` given as well must agree, else it is refused with a one-line reason naming
    /// both. Without a manifest (no model, or bare mapper files converted from the authors'
    /// checkpoints, checked by their dimensions) `tier` is required and `batchNorm` defaults
    /// to frame statistics. The precision follows `precision`; one `cpu` cannot run (bf16
    /// without AVX512-BF16) is refused before any weight is read.
    public static func load(extractors: URL, model: URL?, tier: Tier? = nil, batchNorm: BatchNormMode? = nil,
                            precision choice: PrecisionChoice = .bundle, cpu: CPUFeatures = .current) throws -> DetectorWeights {
        let required: Precision? = if case let .required(p) = choice { p } else { nil }
        let manifest = try model.flatMap { dir -> ModelManifest? in
            guard ModelBundle.hasManifest(dir) else { return nil }
            let manifest = try ModelBundle.manifest(at: dir, extractors: extractors)
            try manifest.require(tier: tier, batchnorm: batchNorm, precision: required, bundle: dir)
            return manifest
        }
        let precision = switch choice {
        case .bundle: manifest?.scoringPrecision ?? .fp32
        case let .required(p), let .run(p): p
        }
        try cpu.require(precision)
        guard let tier = manifest?.tier ?? tier else { throw DetectorSetupError.noTier(model: model?.path) }
        let batchNorm = manifest?.batchnorm ?? batchNorm ?? .frame
        let vit = try VisionTransformer.load(extractors: extractors, tier: tier, precision: precision)
        let pointMAE = try PointMAE.load(extractors: extractors, tier: tier, batchNorm: batchNorm, precision: precision)
        let scorer = try model.map {
            try CrossmodalScorer.load(bundle: $0, rgbDim: vit.config.dim, xyzDim: pointMAE.featureDim, tier: tier, precision: precision)
        }
        return DetectorWeights(tier: tier, vit: vit, pointMAE: pointMAE, scorer: scorer, manifest: manifest, precision: precision)
    }
}

extension AnomalyDetector {
    /// A detector on freshly loaded weights (`DetectorWeights.load`), for commands that run one.
    public static func load(extractors: URL, model: URL?, tier: Tier? = nil, batchNorm: BatchNormMode? = nil,
                            precision: PrecisionChoice = .bundle) throws -> AnomalyDetector {
        AnomalyDetector(weights: try DetectorWeights.load(extractors: extractors, model: model, tier: tier, batchNorm: batchNorm,
                                                          precision: precision))
    }
}

extension CrossmodalScorer {
    /// Both mappers of the bundle directory `bundle`, for features of `rgbDim` and `xyzDim`.
    public static func load(bundle: URL, rgbDim: Int, xyzDim: Int, tier: Tier, precision: Precision = .fp32) throws -> CrossmodalScorer {
        func open(_ name: String, xyzInput: Bool) throws -> FeatureMapper {
            let file = try SafeTensors(contentsOf: bundle.appendingPathComponent(name))
            // The 3D side is the input of one mapper and the output of the other.
            if let shape = file.entries[xyzInput ? "input.weight" : "output.weight"]?.shape, shape.count == 2,
               case let found = xyzInput ? shape[1] : shape[0], found != xyzDim {
                throw ModelLoadingError.wrongTier(file: file.path, expectedXYZDim: xyzDim, foundXYZDim: found, tier: tier)
            }
            return xyzInput ? try FeatureMapper(weights: file, inFeatures: xyzDim, outFeatures: rgbDim, precision: precision)
                : try FeatureMapper(weights: file, inFeatures: rgbDim, outFeatures: xyzDim, precision: precision)
        }
        return CrossmodalScorer(rgbToXYZ: try open(BundleFile.rgbToXYZ, xyzInput: false),
                                xyzToRGB: try open(BundleFile.xyzToRGB, xyzInput: true))
    }
}
