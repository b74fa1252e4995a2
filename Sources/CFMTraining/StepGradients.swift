import CFMDetector
import CFMModels
import CFMTensor

/// Gradients of one optimisation step (both mappers, flat `flatParameters` layout), summed
/// over the batch's samples.
///
/// Pixels are processed in chunks across cores; each worker adds its chunks' contributions
/// to buffers of its own, allocated once per step and reduced once at its end (`reduced`).
/// The mappers' first layers run on the sources (784 tokens, 1024 centres), so their weight
/// gradients are one GEMM per sample over the sources' accumulated gradients.
final class StepGradients {
    let rgbToXYZ: FeatureMapper, xyzToRGB: FeatureMapper
    /// Pixels per chunk handed to a worker.
    static let chunkPixels = 128

    private let size2: Int, size3: Int, maxTokens: Int, maxPoints: Int, scratchCount: Int
    /// Per worker: [gradients 2D→3D | gradients 3D→2D | d tokens' hidden | d centres' hidden | scratch].
    private let buffers: ScratchBuffer<Float>
    private var perWorker: Int { size2 + size3 + (maxTokens + maxPoints) * rgbToXYZ.hidden + scratchCount }

    /// Buffers for a step over `batch` with mappers `rgbToXYZ` (768 → D3D) and `xyzToRGB` (D3D → 768).
    init(rgbToXYZ a: FeatureMapper, xyzToRGB b: FeatureMapper, batch: [TrainingSample]) {
        precondition(a.hidden == b.hidden && a.inFeatures == b.outFeatures && a.outFeatures == b.inFeatures,
                     "the mappers must be each other's mirror")
        (rgbToXYZ, xyzToRGB) = (a, b)
        (size2, size3) = (a.flatParameters.count, b.flatParameters.count)
        maxTokens = batch.map { $0.rgbTokens.shape[0] }.max() ?? 0
        maxPoints = batch.map { $0.pointFeatures.shape[0] }.max() ?? 0
        let n = Self.chunkPixels
        scratchCount = n * (a.inFeatures + a.outFeatures + a.hidden)
            + max(a.trainingScratchCount(rows: n), b.trainingScratchCount(rows: n))
        buffers = ScratchBuffer(count: cpuCount * (size2 + size3 + (maxTokens + maxPoints) * a.hidden + scratchCount))
    }

    /// Adds one sample's gradients (for the loss's mean over `batchPixels` pixels of the batch),
    /// `rgb` / `xyz` being the sample's pixels to use; returns the sums of their cosine similarities.
    func backpropagate(sample: TrainingSample, rgb: PixelCombinations, xyz: PixelCombinations,
                       batchPixels: Int) -> (cos3: Double, cos2: Double) {
        let (a, b) = (rgbToXYZ, xyzToRGB)
        let (d2, d3, h) = (a.inFeatures, a.outFeatures, a.hidden)
        let tokens = sample.rgbTokens, points = sample.pointFeatures
        let (t, g) = (tokens.shape[0], points.shape[0])
        precondition(t <= maxTokens && g <= maxPoints, "sample larger than the step's buffers")
        // First layers on the sources, without bias.
        var tokenHidden = [Float](repeating: 0, count: t * h), pointHidden = [Float](repeating: 0, count: g * h)
        linear(rows: t, inFeatures: d2, outFeatures: h, x: tokens.scalars, weight: a.input.weight, bias: nil, y: &tokenHidden)
        linear(rows: g, inFeatures: d3, outFeatures: h, x: points.scalars, weight: b.input.weight, bias: nil, y: &pointHidden)

        let stride = perWorker, sources = (maxTokens + maxPoints) * h
        for w in 0..<cpuCount { buffers[w * stride + size2 + size3].update(repeating: 0, count: sources) }
        let n = Self.chunkPixels, count = rgb.pixels.count
        let cosines = ScratchBuffer<Double>(count: 2 * cpuCount)
        parallelWorkers((count + n - 1) / n) { worker, chunks in
            let grad2 = buffers[worker * stride], grad3 = grad2 + size2
            let dTokens = grad3 + size3, dPoints = dTokens + maxTokens * h
            let e2 = dTokens + sources, e3 = e2 + n * d2, h1 = e3 + n * d3, scratch = h1 + n * h
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
        // The sources' gradients of all workers into worker 0's; then the first layers' weight
        // gradients dW = dHiddenᵀ · sources, split by rows of dW across cores.
        let dTokens = buffers[size2 + size3], dPoints = dTokens + maxTokens * h
        sumWorkers(offset: size2 + size3, count: sources)
        parallelChunks(h, minimumChunk: 64) { rows in
            gemm(m: rows.count, n: d2, k: t, a: dTokens + rows.lowerBound, lda: h, transposeA: true, b: tokens.scalars, ldb: d2,
                 beta: 1, c: buffers[rows.lowerBound * d2], ldc: d2)
            gemm(m: rows.count, n: d3, k: g, a: dPoints + rows.lowerBound, lda: h, transposeA: true, b: points.scalars, ldb: d3,
                 beta: 1, c: buffers[size2 + rows.lowerBound * d3], ldc: d3)
        }
        let c = (0..<cpuCount).reduce((0.0, 0.0)) { ($0.0 + cosines.base[2 * $1], $0.1 + cosines.base[2 * $1 + 1]) }
        return (cos3: c.0, cos2: c.1)
    }

    /// The step's gradients of both mappers: every worker's sums added up.
    func reduced() -> [[Float]] {
        sumWorkers(offset: 0, count: size2 + size3)
        let all = buffers.base
        return [Array(UnsafeBufferPointer(start: all, count: size2)),
                Array(UnsafeBufferPointer(start: all + size2, count: size3))]
    }

    /// Adds elements `offset..<offset + count` of every worker's buffer to worker 0's.
    private func sumWorkers(offset: Int, count: Int) {
        let stride = perWorker, base = buffers.base + offset
        parallelChunks(count, minimumChunk: 1 << 16) { range in
            for w in 1..<max(1, cpuCount) {
                let source = base + w * stride
                for i in range { base[i] += source[i] }
            }
        }
    }
}
