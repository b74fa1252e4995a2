import CFMDetector
import CFMModels
import CFMTensor
import CFMTestSupport
import Foundation
import Testing

/// The whole detector on a tiny configuration (32×32 frame, 4×4 patch grid, 16 groups of 8
/// points) against the PyTorch reference pipeline (`pipeline_tiny.safetensors`): every
/// tensor that `cfm infer --dump` writes.
@Suite struct PipelineParityTests {
    let fx: SafeTensors
    let detector: AnomalyDetector

    init() throws {
        let fx = try Fixtures.open("pipeline_tiny.safetensors")
        self.fx = fx
        let m = fx.metadata
        func int(_ key: String) -> Int { Int(m[key]!)! }
        // Split the prefixed weights into one file per model, as a deployment has them.
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        func part(_ prefix: String) throws -> SafeTensors {
            var tensors: [String: Tensor] = [:]
            for key in fx.entries.keys where key.hasPrefix(prefix) { tensors[String(key.dropFirst(prefix.count))] = try fx.tensor(key) }
            let url = dir.appendingPathComponent("\(prefix)safetensors")
            try SafeTensors.write(tensors, to: url)
            return try SafeTensors(contentsOf: url)
        }
        let vitConfig = VisionTransformer.Config(
            imageSize: int("vit_image_size"), patchSize: int("vit_patch_size"), dim: int("vit_dim"), heads: int("vit_heads"),
            depth: int("vit_depth"), mlpHidden: int("vit_mlp_hidden"), eps: Float(m["vit_eps"]!)!)
        let pointConfig = PointMAE.Config(
            groups: int("groups"), members: int("members"), hidden1: int("pointmae_c1"), hidden2: int("pointmae_c2"),
            hidden3: int("pointmae_c3"), dim: int("pointmae_dim"), heads: int("pointmae_heads"), depth: int("pointmae_depth"),
            mlpHidden: int("pointmae_mlp_hidden"), posHidden: int("pointmae_pos_hidden"))
        let vit = try VisionTransformer(weights: part("vit."), config: vitConfig, blocks: int("vit_blocks"))
        let pointMAE = try PointMAE(weights: part("pointmae."), config: pointConfig, blocks: int("pointmae_blocks"),
                                    featureBlocks: [1, 2, 3], batchNorm: .frame)
        let d3 = int("d3d")
        let scorer = CrossmodalScorer(
            rgbToXYZ: try FeatureMapper(weights: part("mapper_2d_to_3d."), inFeatures: vitConfig.dim, outFeatures: d3),
            xyzToRGB: try FeatureMapper(weights: part("mapper_3d_to_2d."), inFeatures: d3, outFeatures: vitConfig.dim))
        detector = AnomalyDetector(tier: .small, vit: vit, pointMAE: pointMAE, scorer: scorer)
    }

    @Test func everyDumpedTensorMatchesTheReference() throws {
        let input = ModelInput(rgb: try fx.tensor("rgb_input"), xyz: try fx.tensor("xyz_input"))
        var times = StageTimes()
        let (detection, features) = try detector.detect(input, times: &times)
        let dump = detector.dump(input, features, detection)

        #expect(dump["foreground"] == (try fx.tensor("foreground")))
        #expect(dump["center_indices"] == (try fx.tensor("center_indices")), "FPS picked other centres")
        let groups = try #require(dump["groups"]), expectedGroups = try fx.tensor("groups")
        let k = groups.shape[1]
        for g in 0..<groups.shape[0] {
            let row = Set(groups.scalars[(g * k)..<((g + 1) * k)]), expected = Set(expectedGroups.scalars[(g * k)..<((g + 1) * k)])
            #expect(row == expected, "group \(g) holds other points")
        }
        for key in ["rgb_features", "rgb_map", "centers", "xyz_features", "xyz_map", "psi2d", "psi3d", "anomaly_map", "score"] {
            let error = relativeError(try #require(dump[key]), try fx.tensor(key))
            #expect(error < 1e-4, "\(key): relative error \(error)")
        }
        #expect(times.stages.map(\.name) == ["extract2d", "fps", "knn", "extract3d", "interpolate", "align", "map", "score"])
    }

    @Test func tooFewPointsIsAClearError() throws {
        var xyz = Tensor(shape: [32, 32, 3])
        for i in 0..<5 { xyz.scalars[3 * i ..< 3 * i + 3] = [0.1, 0.1, 0.5] }
        var times = StageTimes()
        #expect(throws: DetectorError.tooFewPoints(found: 5, needed: 8)) {
            try detector.detect(ModelInput(rgb: try fx.tensor("rgb_input"), xyz: xyz), times: &times)
        }
        xyz.scalars[0] = .nan
        #expect(throws: DetectorError.nonFinite("XYZ input")) {
            try detector.detect(ModelInput(rgb: try fx.tensor("rgb_input"), xyz: xyz), times: &times)
        }
    }
}
