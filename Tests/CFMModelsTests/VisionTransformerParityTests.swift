import CFMModels
import CFMTensor
import CFMTestSupport
import Foundation
import Testing

/// The ViT against timm 1.0.3 on a tiny configuration (`Tests/Fixtures/vit_tiny.safetensors`):
/// every stage — patch embedding, embeddings, each block, final norm, features, upsampling.
@Suite struct VisionTransformerParityTests {
    let fx: SafeTensors
    let config: VisionTransformer.Config
    let tolerance: Float = 1e-4

    init() throws {
        fx = try Fixtures.open("vit_tiny.safetensors")
        let m = fx.metadata
        config = VisionTransformer.Config(
            imageSize: Int(m["image_size"]!)!, patchSize: Int(m["patch_size"]!)!, dim: Int(m["dim"]!)!,
            heads: Int(m["heads"]!)!, depth: Int(m["depth"]!)!, mlpHidden: Int(m["mlp_hidden"]!)!, eps: Float(m["eps"]!)!)
    }

    @Test(arguments: [1, 2])
    func everyStageMatchesTimm(blocks: Int) throws {
        let vit = try VisionTransformer(weights: fx, config: config, blocks: blocks)
        var workspace = vit.makeWorkspace()
        var stages: [String: Tensor] = [:]
        let features = vit.features(image: try fx.tensor("input"), workspace: &workspace) { stages[$0] = $1 }

        var expected = ["patch_embed": "trace.patch_embed", "embed": "trace.embed", "norm": "trace.norm.\(blocks)"]
        for i in 0..<blocks { expected["block.\(i)"] = "trace.block.\(i)" }
        #expect(Set(stages.keys) == Set(expected.keys))
        for (stage, key) in expected {
            let error = relativeError(try #require(stages[stage]), try fx.tensor(key))
            #expect(error < tolerance, "stage \(stage): relative error \(error)")
        }
        #expect(relativeError(features, try fx.tensor("trace.features.\(blocks)")) < tolerance)
        #expect(relativeError(vit.upsample(features), try fx.tensor("trace.upsampled.\(blocks)")) < tolerance)
    }

    @Test func workspaceIsReusableAcrossFrames() throws {
        let vit = try VisionTransformer(weights: fx, config: config, blocks: 2)
        var workspace = vit.makeWorkspace()
        let image = try fx.tensor("input")
        let first = vit.features(image: image, workspace: &workspace)
        let second = vit.features(image: image, workspace: &workspace)
        #expect(first == second)
    }

    @Test func prunedModelNeedsOnlyItsBlocks() throws {
        // A file without block 1 still loads for one block, and fails naming the key for two.
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var tensors: [String: Tensor] = [:]
        for (name, _) in config.parameterShapes where !name.hasPrefix("blocks.1.") { tensors[name] = try fx.tensor(name) }
        let url = dir.appendingPathComponent("vit.safetensors")
        try SafeTensors.write(tensors, to: url)
        let pruned = try SafeTensors(contentsOf: url)
        _ = try VisionTransformer(weights: pruned, config: config, blocks: 1)
        #expect(throws: SafeTensorsError.missingKey(file: url.path, key: "blocks.1.norm1.weight")) {
            try VisionTransformer(weights: pruned, config: config, blocks: 2)
        }
        #expect(throws: ModelError.invalidBlockCount(requested: 3, available: 2)) {
            try VisionTransformer(weights: pruned, config: config, blocks: 3)
        }
    }

    @Test func mismatchedWeightsAreRefusedWithTheKey() throws {
        var wrong = config
        wrong.mlpHidden = 64
        #expect(throws: SafeTensorsError.shapeMismatch(file: fx.path, key: "blocks.0.mlp.fc1.weight", expected: [64, 32], found: [128, 32])) {
            try VisionTransformer(weights: fx, config: wrong, blocks: 1)
        }
    }
}
