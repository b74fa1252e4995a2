import CFMTensor
import CFMTestSupport
import Testing

/// Every kernel against PyTorch 1.13 outputs (`Tests/Fixtures/kernels.safetensors`).
@Suite struct KernelFixtureTests {
    let fx: SafeTensors
    init() throws { fx = try Fixtures.open("kernels.safetensors") }

    /// Relative tolerance of the kernels (float32 rounding-order differences only).
    let tolerance: Float = 1e-5

    @Test func gelu() throws {
        let x = try fx.tensor("gelu.x")
        let y = x.map(to: x.shape) { src, dst in
            dst.update(from: src, count: x.count)
            geluInPlace(dst, count: x.count)
        }
        #expect(y.maxAbsDifference(try fx.tensor("gelu.y")) < 1e-6)
    }

    @Test(arguments: [("layernorm.y6", Float(1e-6)), ("layernorm.y5", Float(1e-5))])
    func layerNormMatches(key: String, eps: Float) throws {
        let x = try fx.tensor("layernorm.x"), w = try fx.tensor("layernorm.w"), b = try fx.tensor("layernorm.b")
        let y = x.map(to: x.shape) { layerNorm(rows: 7, dim: 33, x: $0, weight: w.scalars, bias: b.scalars, eps: eps, y: $1) }
        // Rows with variance down to 1e-4 around a mean of 3: float32 cancellation alone
        // (PyTorch's own included) reaches ~2e-5 here.
        let error = relativeError(y, try fx.tensor(key))
        #expect(error < 5e-5, "relative error \(error)")
    }

    @Test func softmax() throws {
        let x = try fx.tensor("softmax.x")
        let y = x.map(to: x.shape) { src, dst in
            dst.update(from: src, count: x.count)
            softmaxRowsInPlace(dst, rows: 5, cols: 17)
        }
        #expect(relativeError(y, try fx.tensor("softmax.y")) < tolerance)
    }

    @Test func attention() throws {
        let qkv = try fx.tensor("attention.qkv")
        var scores = [Float](repeating: 0, count: attentionScratchCount(tokens: 9))
        let y = qkv.map(to: [9, 16]) { multiHeadAttention(tokens: 9, dim: 16, heads: 2, qkv: $0, out: $1, scores: &scores) }
        #expect(relativeError(y, try fx.tensor("attention.y")) < tolerance)
    }

    @Test func linearLayer() throws {
        let x = try fx.tensor("linear.x"), w = try fx.tensor("linear.w"), b = try fx.tensor("linear.b")
        let y = x.map(to: [6, 7]) {
            linear(rows: 6, inFeatures: 10, outFeatures: 7, x: $0, weight: w.scalars, bias: b.scalars, y: $1)
        }
        #expect(relativeError(y, try fx.tensor("linear.y")) < tolerance)
    }

    @Test func patchEmbeddingConvolution() throws {
        let x = try fx.tensor("patchify.x"), w = try fx.tensor("patchify.w"), b = try fx.tensor("patchify.b")
        var patches = [Float](repeating: 0, count: 6 * 192)
        let tokens = x.map(to: [6, 5]) {
            patchEmbedding(image: $0, channels: 3, height: 16, width: 24, patch: 8, weight: w.scalars,
                           bias: b.scalars, outChannels: 5, patches: &patches, out: $1)
        }
        // Conv output is [5, 2, 3]; ours is token-major [2·3, 5].
        let expected = try fx.tensor("patchify.y")
        let planes = Tensor(shape: [5, 2, 3], scalars: (0..<30).map { i in tokens.scalars[(i % 6) * 5 + i / 6] })
        #expect(relativeError(planes, expected) < tolerance)
    }

    @Test(arguments: [("bilinear", [3, 4, 5], [32, 40]), ("bilinear28", [2, 28, 28], [224, 224])])
    func bilinear(name: String, shape: [Int], size: [Int]) throws {
        let x = try fx.tensor("\(name).x", shape: shape)
        let y = x.map(to: [shape[0]] + size) {
            bilinearResize($0, channels: shape[0], height: shape[1], width: shape[2], outHeight: size[0], outWidth: size[1], out: $1)
        }
        #expect(relativeError(y, try fx.tensor("\(name).y")) < tolerance)
    }

    @Test(arguments: [("avgpool3", 3, 0), ("box5", 5, 2), ("box7", 7, 3)])
    func averagePooling(name: String, kernel: Int, padding: Int) throws {
        let x = try fx.tensor("\(name).x")
        let expected = try fx.tensor("\(name).y")
        let (c, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        let y = x.map(to: expected.shape) {
            averagePool($0, channels: c, height: h, width: w, kernel: kernel, padding: padding, out: $1)
        }
        #expect(relativeError(y, expected) < tolerance)
    }

    @Test(arguments: ["adaptive", "adaptive222"])
    func adaptivePooling(name: String) throws {
        let x = try fx.tensor("\(name).x"), expected = try fx.tensor("\(name).y")
        let y = x.map(to: expected.shape) {
            adaptiveAveragePool($0, channels: x.shape[0], height: x.shape[1], width: x.shape[2],
                                outHeight: expected.shape[1], outWidth: expected.shape[2], out: $1)
        }
        #expect(relativeError(y, expected) < tolerance)
    }

    @Test func maxPoolingOverGroupMembers() throws {
        let x = try fx.tensor("maxgroups.x")
        let y = x.map(to: [4, 3]) { maxOverMembers($0, groups: 4, members: 6, channels: 3, out: $1) }
        #expect(y == (try fx.tensor("maxgroups.y")))
    }
}
