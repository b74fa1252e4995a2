import CFMTensor
import Foundation

/// File names inside an extractors directory (`cfm init-weights` output or
/// `tools/convert_checkpoints.py` output).
public enum ExtractorFile {
    public static let vit = "vit.safetensors"
    public static let pointMAE = "pointmae.safetensors"
}

extension VisionTransformer {
    /// The DINO ViT-B/8 of `directory`/vit.safetensors, pruned to `tier`.
    public static func load(extractors directory: URL, tier: Tier, precision: Precision = .fp32) throws -> VisionTransformer {
        let weights = try SafeTensors(contentsOf: directory.appendingPathComponent(ExtractorFile.vit))
        return try VisionTransformer(weights: weights, config: .dinoViTB8, blocks: tier.blocks, precision: precision)
    }
}

extension PointMAE {
    /// The Point-MAE encoder of `directory`/pointmae.safetensors, pruned to `tier`.
    public static func load(extractors directory: URL, tier: Tier, batchNorm: BatchNormMode,
                            precision: Precision = .fp32) throws -> PointMAE {
        let weights = try SafeTensors(contentsOf: directory.appendingPathComponent(ExtractorFile.pointMAE))
        return try PointMAE(weights: weights, config: .pointMAE, blocks: tier.blocks,
                            featureBlocks: tier.pointFeatureBlocks, batchNorm: batchNorm, precision: precision)
    }
}
