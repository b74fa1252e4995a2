import CFMDetector
import CFMModels
import CFMTensor

/// One nominal training sample: its frozen extractor outputs and how they become
/// per-pixel features (both paths cover the same unmasked pixels).
public struct TrainingSample: Sendable {
    /// ViT patch tokens [grid², 768].
    public let rgbTokens: Tensor
    /// Point-MAE centre features [groups, D3D].
    public let pointFeatures: Tensor
    public let rgb: PixelCombinations, xyz: PixelCombinations

    public init(rgbTokens: Tensor, pointFeatures: Tensor, rgb: PixelCombinations, xyz: PixelCombinations) {
        precondition(rgb.pixels == xyz.pixels, "both paths must cover the same pixels")
        (self.rgbTokens, self.pointFeatures, self.rgb, self.xyz) = (rgbTokens, pointFeatures, rgb, xyz)
    }
}

/// Mean losses and cosine similarities of one step or epoch.
public struct TrainingMetrics: Sendable, Equatable {
    /// (1 − cos3D) + (1 − cos2D).
    public var loss: Float
    /// Mean cosine similarity of mapped vs observed 3D features (2D → 3D mapper).
    public var cosine3D: Float
    /// Mean cosine similarity of mapped vs observed 2D features (3D → 2D mapper).
    public var cosine2D: Float
    /// Pixels the means are over.
    public var pixels: Int

    public init(loss: Float, cosine3D: Float, cosine2D: Float, pixels: Int) {
        (self.loss, self.cosine3D, self.cosine2D, self.pixels) = (loss, cosine3D, cosine2D, pixels)
    }
}

/// Trains both crossmodal mappers jointly on nominal samples: the loss
/// (1 − mean cos(Ê3D, E3D)) + (1 − mean cos(Ê2D, E2D)) over the batch's unmasked pixels,
/// one Adam over both mappers, optional unbiased pixel subsampling.
///
/// The mappers' first layers run on the sources (784 tokens, 1024 centres) in both
/// directions of the pass; pixels are processed in chunks across cores (`StepGradients`).
public struct MapperTrainer: Sendable {
    public private(set) var rgbToXYZ: FeatureMapper, xyzToRGB: FeatureMapper
    private var parameters: [[Float]]
    private var adam: Adam
    /// Unmasked pixels drawn per sample and step without replacement; 0 = all.
    public var pixelsPerSample: Int
    private var rng: SeededRandom

    public init(rgbToXYZ: FeatureMapper, xyzToRGB: FeatureMapper, pixelsPerSample: Int = 0, seed: UInt64 = 0,
                learningRate: Float = 1e-3) {
        (self.rgbToXYZ, self.xyzToRGB, self.pixelsPerSample) = (rgbToXYZ, xyzToRGB, pixelsPerSample)
        parameters = [rgbToXYZ.flatParameters, xyzToRGB.flatParameters]
        adam = Adam(sizes: parameters.map(\.count), learningRate: learningRate)
        rng = SeededRandom(seed: seed)
    }

    /// One optimisation step on `batch`; returns the batch's loss and similarities (before the update).
    @discardableResult
    public mutating func step(_ batch: [TrainingSample]) -> TrainingMetrics {
        let chosen = batch.map { sample -> (TrainingSample, PixelCombinations, PixelCombinations) in
            let n = sample.rgb.pixels.count
            guard pixelsPerSample > 0, pixelsPerSample < n else { return (sample, sample.rgb, sample.xyz) }
            let picks = rng.sample(pixelsPerSample, of: n)
            return (sample, sample.rgb.subset(picks), sample.xyz.subset(picks))
        }
        let total = chosen.reduce(0) { $0 + $1.1.pixels.count }
        let (a, b) = (rgbToXYZ, xyzToRGB)
        let gradients = StepGradients(rgbToXYZ: a, xyzToRGB: b, batch: batch)
        var cos3 = 0.0, cos2 = 0.0
        for (sample, rgb, xyz) in chosen {
            let r = gradients.backpropagate(sample: sample, rgb: rgb, xyz: xyz, batchPixels: total)
            cos3 += r.cos3
            cos2 += r.cos2
        }
        adam.update(&parameters, gradients: gradients.reduced())
        rgbToXYZ = FeatureMapper(inFeatures: a.inFeatures, outFeatures: a.outFeatures, flat: parameters[0])
        xyzToRGB = FeatureMapper(inFeatures: b.inFeatures, outFeatures: b.outFeatures, flat: parameters[1])
        let c3 = Float(cos3 / Double(max(1, total))), c2 = Float(cos2 / Double(max(1, total)))
        return TrainingMetrics(loss: (1 - c3) + (1 - c2), cosine3D: c3, cosine2D: c2, pixels: total)
    }

    /// One pass over `samples` in a seeded random order, in batches of `batchSize`;
    /// returns the pixel-weighted means over its steps.
    @discardableResult
    public mutating func epoch(_ samples: [TrainingSample], batchSize: Int = 4) -> TrainingMetrics {
        var order = Array(samples.indices)
        order.shuffle(using: &rng)
        var sum = (loss: 0.0, c3: 0.0, c2: 0.0), pixels = 0
        for start in stride(from: 0, to: order.count, by: batchSize) {
            let m = step(order[start..<min(order.count, start + batchSize)].map { samples[$0] })
            sum.loss += Double(m.loss) * Double(m.pixels)
            sum.c3 += Double(m.cosine3D) * Double(m.pixels)
            sum.c2 += Double(m.cosine2D) * Double(m.pixels)
            pixels += m.pixels
        }
        let n = Double(max(1, pixels))
        return TrainingMetrics(loss: Float(sum.loss / n), cosine3D: Float(sum.c3 / n), cosine2D: Float(sum.c2 / n), pixels: pixels)
    }
}

extension SeededRandom {
    /// `count` distinct indices of `0..<population`, sorted (partial Fisher–Yates).
    public mutating func sample(_ count: Int, of population: Int) -> [Int] {
        var pool = Array(0..<population)
        for i in 0..<count {
            let j = i + Int(next() % UInt64(population - i))
            pool.swapAt(i, j)
        }
        return pool[0..<count].sorted()
    }
}
