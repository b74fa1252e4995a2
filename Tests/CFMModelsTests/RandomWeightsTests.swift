import CFMModels
import CFMTensor
import Testing

@Suite struct RandomWeightsTests {
    @Test func sameSeedSameWeightsOtherSeedOtherWeights() {
        let shapes = VisionTransformer.Config(imageSize: 16, patchSize: 8, dim: 8, heads: 2, depth: 2, mlpHidden: 16).parameterShapes
        let a = RandomWeights.generate(shapes, seed: 3), b = RandomWeights.generate(shapes, seed: 3)
        let c = RandomWeights.generate(shapes, seed: 4)
        #expect(a == b)
        #expect(a["blocks.1.attn.qkv.weight"] != c["blocks.1.attn.qkv.weight"])
        #expect(Set(a.keys) == Set(shapes.map(\.0)))
        for (name, shape) in shapes { #expect(a[name]?.shape == shape) }
    }

    @Test func fullSizeViTHasTheOfficialKeysAndShapes() {
        let shapes = Dictionary(uniqueKeysWithValues: VisionTransformer.Config.dinoViTB8.parameterShapes)
        #expect(shapes.count == 4 + 12 * 12 + 2)
        #expect(shapes["pos_embed"] == [1, 785, 768])
        #expect(shapes["blocks.11.attn.qkv.weight"] == [2304, 768])
        #expect(shapes["patch_embed.proj.weight"] == [768, 3, 8, 8])
    }

    @Test func distributionsFollowTheScheme() {
        let w = RandomWeights.generate([("x.weight", [100_000]), ("norm.weight", [100_000])], seed: 1)
        let x = w["x.weight"]!.scalars, n = w["norm.weight"]!.scalars
        let std = (x.map { $0 * $0 }.reduce(0, +) / Float(x.count)).squareRoot()
        #expect(abs(std - 0.0176) < 0.001)  // N(0, 0.02²) truncated at ±2σ has σ ≈ 0.88 · 0.02
        #expect(x.allSatisfy { abs($0) <= 0.04 })
        #expect(abs(n.reduce(0, +) / Float(n.count) - 1) < 0.001)
    }
}
