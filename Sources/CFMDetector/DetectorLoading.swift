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

extension AnomalyDetector {
    /// Loads the extractors of `extractors` pruned to `tier` and, when `model` is given, the
    /// two mappers of that bundle. A bundle with a manifest is checked first (tier, mapper
    /// checksums, extractor checksums) and refused with a one-line reason; bare mapper files
    /// (e.g. converted from the authors' checkpoints) are checked by their dimensions.
    public static func load(extractors: URL, model: URL?, tier: Tier, batchNorm: BatchNormMode = .frame) throws -> AnomalyDetector {
        let manifest = try model.flatMap { dir -> ModelManifest? in
            guard FileManager.default.fileExists(atPath: dir.appendingPathComponent(BundleFile.manifest).path) else { return nil }
            return try ModelBundle.manifest(at: dir, tier: tier, extractors: extractors)
        }
        let vit = try VisionTransformer.load(extractors: extractors, tier: tier)
        let pointMAE = try PointMAE.load(extractors: extractors, tier: tier, batchNorm: batchNorm)
        let scorer = try model.map { try CrossmodalScorer.load(bundle: $0, rgbDim: vit.config.dim, xyzDim: pointMAE.featureDim, tier: tier) }
        return AnomalyDetector(tier: tier, vit: vit, pointMAE: pointMAE, scorer: scorer, manifest: manifest)
    }
}

extension CrossmodalScorer {
    /// Both mappers of the bundle directory `bundle`, for features of `rgbDim` and `xyzDim`.
    public static func load(bundle: URL, rgbDim: Int, xyzDim: Int, tier: Tier) throws -> CrossmodalScorer {
        func open(_ name: String, xyzInput: Bool) throws -> FeatureMapper {
            let file = try SafeTensors(contentsOf: bundle.appendingPathComponent(name))
            // The 3D side is the input of one mapper and the output of the other.
            if let shape = file.entries[xyzInput ? "input.weight" : "output.weight"]?.shape, shape.count == 2,
               case let found = xyzInput ? shape[1] : shape[0], found != xyzDim {
                throw ModelLoadingError.wrongTier(file: file.path, expectedXYZDim: xyzDim, foundXYZDim: found, tier: tier)
            }
            return xyzInput ? try FeatureMapper(weights: file, inFeatures: xyzDim, outFeatures: rgbDim)
                : try FeatureMapper(weights: file, inFeatures: rgbDim, outFeatures: xyzDim)
        }
        return CrossmodalScorer(rgbToXYZ: try open(BundleFile.rgbToXYZ, xyzInput: false),
                                xyzToRGB: try open(BundleFile.xyzToRGB, xyzInput: true))
    }
}
