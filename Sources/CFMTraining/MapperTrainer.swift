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

/// Trains both crossmodal mappers jointly on nominal samples (DESIGN.md §3.8): the loss
/// (1 − mean cos(Ê3D, E3D)) + (1 − mean cos(Ê2D, E2D)) over the batch's unmasked pixels,
/// one Adam over both mappers, optional unbiased pixel subsampling.
///
/// The mappers' first layers run on the sources (784 tokens, 1024 centres) in both
/// directions of the pass; pixels are processed in chunks across cores, each worker with
/// its own gradient buffers.
public struct MapperTrainer: Sendable {
    public private(set) var rgbToXYZ: FeatureMapper, xyzToRGB: FeatureMapper
    private var parameters: [[Float]]
    private var adam: Adam
    /// Unmasked pixels drawn per sample and step without replacement; 0 = all.
    public var pixelsPerSample: Int
    private var rng: SeededRandom
    static let chunkPixels = 128

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
        let size2 = parameters[0].count, size3 = parameters[1].count
        var gradients = [[Float](repeating: 0, count: size2), [Float](repeating: 0, count: size3)]
        var cos3 = 0.0, cos2 = 0.0
        for (sample, rgb, xyz) in chosen {
            let r = Self.backpropagate(sample: sample, rgb: rgb, xyz: xyz, rgbToXYZ: a, xyzToRGB: b, batchPixels: total,
                                       gradients: &gradients)
            cos3 += r.cos3
            cos2 += r.cos2
        }
        adam.update(&parameters, gradients: gradients)
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

    /// Adds one sample's gradients (for a batch mean over `batchPixels`) to `gradients`;
    /// returns the sums of its pixels' cosine similarities.
    static func backpropagate(sample: TrainingSample, rgb: PixelCombinations, xyz: PixelCombinations,
                              rgbToXYZ a: FeatureMapper, xyzToRGB b: FeatureMapper, batchPixels: Int,
                              gradients: inout [[Float]]) -> (cos3: Double, cos2: Double) {
        let (d2, d3, h) = (a.inFeatures, a.outFeatures, a.hidden)
        let tokens = sample.rgbTokens, points = sample.pointFeatures
        let (t, g) = (tokens.shape[0], points.shape[0])
        // First layers on the sources, without bias.
        var tokenHidden = [Float](repeating: 0, count: t * h), pointHidden = [Float](repeating: 0, count: g * h)
        linear(rows: t, inFeatures: d2, outFeatures: h, x: tokens.scalars, weight: a.input.weight, bias: nil, y: &tokenHidden)
        linear(rows: g, inFeatures: d3, outFeatures: h, x: points.scalars, weight: b.input.weight, bias: nil, y: &pointHidden)

        let n = chunkPixels, count = rgb.pixels.count
        let size2 = gradients[0].count, size3 = gradients[1].count
        let scratchCount = n * (d2 + d3 + h) + max(a.trainingScratchCount(rows: n), b.trainingScratchCount(rows: n))
        let perWorker = size2 + size3 + (t + g) * h + scratchCount
        let buffers = ScratchBuffer<Float>(count: cpuCount * perWorker)
        let cosines = ScratchBuffer<Double>(count: 2 * cpuCount)
        parallelWorkers((count + n - 1) / n) { worker, chunks in
            let grad2 = buffers[worker * perWorker], grad3 = grad2 + size2
            let dTokens = grad3 + size3, dPoints = dTokens + t * h
            let e2 = dPoints + g * h, e3 = e2 + n * d2, h1 = e3 + n * d3, scratch = h1 + n * h
            for chunk in chunks {
                let range = (chunk * n)..<min(count, (chunk + 1) * n), rows = range.count
                rgb.gather(range, from: tokens.scalars, width: d2, bias: nil, into: e2)
                xyz.gather(range, from: points.scalars, width: d3, bias: nil, into: e3)
                // 2D → 3D, compared with the observed 3D features.
                rgb.gather(range, from: tokenHidden, width: h, bias: a.input.bias, into: h1)
                a.trainStep(rows: rows, h1: h1, grads: grad2, scratch: scratch) { y, dy in
                    for i in 0..<rows {
                        cosines[2 * worker].pointee += Double(CosineLoss.similarity(
                            y + i * d3, e3 + i * d3, width: d3, count: batchPixels, gradient: dy + i * d3))
                    }
                }
                rgb.scatterAdd(range, rows: h1, width: h, into: dTokens)
                // 3D → 2D, compared with the observed 2D features.
                xyz.gather(range, from: pointHidden, width: h, bias: b.input.bias, into: h1)
                b.trainStep(rows: rows, h1: h1, grads: grad3, scratch: scratch) { y, dy in
                    for i in 0..<rows {
                        cosines[2 * worker + 1].pointee += Double(CosineLoss.similarity(
                            y + i * d2, e2 + i * d2, width: d2, count: batchPixels, gradient: dy + i * d2))
                    }
                }
                xyz.scatterAdd(range, rows: h1, width: h, into: dPoints)
            }
        }
        // Reduce the workers' buffers; the first layers' weight gradients come from the sources.
        for w in 0..<cpuCount {
            let base = buffers[w * perWorker]
            for i in 0..<size2 { gradients[0][i] += base[i] }
            for i in 0..<size3 { gradients[1][i] += base[size2 + i] }
            if w > 0 {
                let first = buffers[size2 + size3]
                for i in 0..<((t + g) * h) { first[i] += base[size2 + size3 + i] }
            }
        }
        let dTokens = buffers[size2 + size3], dPoints = dTokens + t * h
        gradients[0].withUnsafeMutableBufferPointer { g2 in
            gemm(m: h, n: d2, k: t, a: dTokens, lda: h, transposeA: true, b: tokens.scalars, ldb: d2,
                 beta: 1, c: g2.baseAddress!, ldc: d2)
        }
        gradients[1].withUnsafeMutableBufferPointer { g3 in
            gemm(m: h, n: d3, k: g, a: dPoints, lda: h, transposeA: true, b: points.scalars, ldb: d3,
                 beta: 1, c: g3.baseAddress!, ldc: d3)
        }
        let c = (0..<cpuCount).reduce((0.0, 0.0)) { ($0.0 + cosines.base[2 * $1], $0.1 + cosines.base[2 * $1 + 1]) }
        return (cos3: c.0, cos2: c.1)
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
