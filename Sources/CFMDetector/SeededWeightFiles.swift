import CFMModels
import CFMTensor
import Foundation

/// Seeded random weight files of the real architectures, written under the names the loaders
/// read: the extractors (`cfm init-weights`, `cfm demo`, a bench without extractors) and a
/// tier's two mappers (a bench without a model). Same seed and tier, same bytes.
public enum SeededWeightFiles {
    /// Writes both extractors with the official key names into `dir`, created if missing;
    /// returns the files written. `.full` writes all 12 blocks (tiers prune them at load time);
    /// a smaller tier only the blocks it reads (smaller files for tests: the tensors are drawn
    /// in order, so the values differ from the full files').
    @discardableResult
    public static func writeExtractors(seed: UInt64, for tier: Tier = .full, to dir: URL) throws -> [URL] {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let vitFile = dir.appendingPathComponent(ExtractorFile.vit)
        try SafeTensors.write(RandomWeights.generate(keeping(tier, VisionTransformer.Config.dinoViTB8.parameterShapes), seed: seed),
                              metadata: ["model": "vit_base_patch8_224.dino", "cfm_seed": "\(seed)"], to: vitFile)
        // A different stream for the second model, so neither depends on the other's size.
        let pointFile = dir.appendingPathComponent(ExtractorFile.pointMAE)
        try SafeTensors.write(RandomWeights.generate(keeping(tier, PointMAE.Config.pointMAE.parameterShapes), seed: seed &+ 0x5EED),
                              metadata: ["model": "point_mae_pretrain", "cfm_seed": "\(seed)"], to: pointFile)
        return [vitFile, pointFile]
    }

    /// The parameters of `shapes` that `tier` reads: all but the transformer blocks from
    /// `tier.blocks` on (`blocks.N.…` of the ViT, `blocks.blocks.N.…` of Point-MAE).
    static func keeping(_ tier: Tier, _ shapes: [(String, [Int])]) -> [(String, [Int])] {
        shapes.filter { name, _ in
            let parts = name.split(separator: ".")
            let block = zip(parts, parts.dropFirst()).lazy.compactMap { $0 == "blocks" ? Int($1) : nil }.first
            return (block ?? 0) < tier.blocks
        }
    }

    /// Writes the 2D→3D and 3D→2D mappers of `tier` (bare mapper files, no manifest) into `dir`,
    /// created if missing, with PyTorch's default initialisation as training starts them: the
    /// 2D side is the ViT's 768 features, the 3D side the tier's Point-MAE feature blocks × 384.
    public static func writeMappers(seed: UInt64, for tier: Tier, to dir: URL) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let rgb = VisionTransformer.Config.dinoViTB8.dim, xyz = tier.pointFeatureBlocks.count * PointMAE.Config.pointMAE.dim
        for (name, (i, o), s) in [(BundleFile.rgbToXYZ, (rgb, xyz), seed), (BundleFile.xyzToRGB, (xyz, rgb), seed &+ 1)] {
            try SafeTensors.write(FeatureMapper.initial(inFeatures: i, outFeatures: o, seed: s).tensors,
                                  to: dir.appendingPathComponent(name))
        }
    }
}
