import CFMModels
import CFMTensor
import CFMTestSupport
import Foundation
import Testing

/// Point-MAE's encoder against the PyTorch reference on a tiny configuration
/// (`Tests/Fixtures/pointmae_tiny.safetensors`): mini-PointNet in both BatchNorm modes, the
/// positional MLP, every block, and the tier's normed, concatenated feature blocks.
@Suite struct PointMAEParityTests {
    let fx: SafeTensors
    let config: PointMAE.Config
    let tolerance: Float = 1e-4

    init() throws {
        fx = try Fixtures.open("pointmae_tiny.safetensors")
        let m = fx.metadata
        func int(_ key: String) -> Int { Int(m[key]!)! }
        config = PointMAE.Config(groups: int("groups"), members: int("members"), hidden1: int("c1"), hidden2: int("c2"),
                                 hidden3: int("c3"), dim: int("dim"), heads: int("heads"), depth: int("depth"),
                                 mlpHidden: int("mlp_hidden"), posHidden: int("pos_hidden"))
    }

    func run(blocks: Int, featureBlocks: [Int], batchNorm: BatchNormMode) throws -> (Tensor, [String: Tensor]) {
        let model = try PointMAE(weights: fx, config: config, blocks: blocks, featureBlocks: featureBlocks, batchNorm: batchNorm)
        var workspace = model.makeWorkspace()
        var trace: [String: Tensor] = [:]
        let features = model.features(neighborhoods: try fx.tensor("trace.neighborhoods"), centers: try fx.tensor("trace.centers"),
                                      workspace: &workspace) { trace[$0] = $1 }
        return (features, trace)
    }

    @Test func everyStageMatchesWithFrameStatistics() throws {
        let (features, trace) = try run(blocks: 4, featureBlocks: [1, 2, 3], batchNorm: .frame)
        var expected = ["tokens": "trace.tokens.frame", "pos": "trace.pos"]
        for i in 0..<4 { expected["block.\(i)"] = "trace.block.\(i)" }
        for (stage, key) in expected {
            let error = relativeError(try #require(trace[stage]), try fx.tensor(key))
            #expect(error < tolerance, "stage \(stage): relative error \(error)")
        }
        #expect(relativeError(features, try fx.tensor("trace.features.4")) < tolerance)
    }

    @Test func oneBlockTierUsesItsOnlyBlock() throws {
        let (features, _) = try run(blocks: 1, featureBlocks: [0], batchNorm: .frame)
        #expect(relativeError(features, try fx.tensor("trace.features.1")) < tolerance)
    }

    @Test func runningStatisticsFoldIntoTheConvolutions() throws {
        let (features, trace) = try run(blocks: 4, featureBlocks: [1, 2, 3], batchNorm: .running)
        #expect(relativeError(try #require(trace["tokens"]), try fx.tensor("trace.tokens.running")) < tolerance)
        #expect(relativeError(features, try fx.tensor("trace.features.4.running")) < tolerance)
    }

    @Test func fullSizeKeysMatchTheAuthorsCheckpoint() {
        let shapes = Dictionary(uniqueKeysWithValues: PointMAE.Config.pointMAE.parameterShapes)
        #expect(shapes["encoder.second_conv.0.weight"] == [512, 512, 1])
        #expect(shapes["blocks.blocks.11.attn.qkv.weight"] == [1152, 384])
        #expect(shapes["blocks.blocks.0.attn.qkv.bias"] == nil)
        #expect(shapes["encoder.first_conv.1.running_var"] == [128])
    }
}
