import CFMTensor

/// Where BatchNorm takes its statistics from.
public enum BatchNormMode: String, Sendable, CaseIterable, Codable {
    /// Each frame's own batch statistics (mean and biased variance over all points of the
    /// frame): what the authors' released code does, since it never calls `eval()`.
    case frame
    /// The checkpoint's running statistics; BatchNorm then folds into the convolutions.
    case running
}

/// A per-channel affine map `y = x·scale + shift` (a BatchNorm with fixed statistics).
struct ChannelAffine: Sendable {
    var scale: [Float], shift: [Float]

    /// BatchNorm `(x − mean)/√(variance + eps)·γ + β` as an affine map.
    init(mean: [Double], variance: [Double], gamma: [Float], beta: [Float], eps: Float) {
        let scale = (0..<gamma.count).map { Float(Double(gamma[$0]) / (variance[$0] + Double(eps)).squareRoot()) }
        self.scale = scale
        shift = (0..<gamma.count).map { c in Float(Double(beta[c]) - mean[c] * Double(scale[c])) }
    }

    /// `layer` followed by this map, as one linear layer: rows of W scaled, bias mapped.
    func fold(weight: [Float], bias: [Float], inFeatures: Int) -> (weight: [Float], bias: [Float]) {
        var w = weight
        for o in 0..<scale.count {
            for i in 0..<inFeatures { w[o * inFeatures + i] *= scale[o] }
        }
        return (w, (0..<scale.count).map { bias[$0] * scale[$0] + shift[$0] })
    }
}

/// BatchNorm1d parameters (`weight bias running_mean running_var`).
struct BatchNorm: Sendable {
    let gamma: [Float], beta: [Float], runningMean: [Float], runningVariance: [Float]
    let eps: Float

    init(_ weights: SafeTensors, _ name: String, channels: Int, eps: Float) throws {
        gamma = try weights.tensor("\(name).weight", shape: [channels]).scalars
        beta = try weights.tensor("\(name).bias", shape: [channels]).scalars
        runningMean = try weights.tensor("\(name).running_mean", shape: [channels]).scalars
        runningVariance = try weights.tensor("\(name).running_var", shape: [channels]).scalars
        self.eps = eps
    }

    /// The affine map for given statistics.
    func affine(mean: [Double], variance: [Double]) -> ChannelAffine {
        ChannelAffine(mean: mean, variance: variance, gamma: gamma, beta: beta, eps: eps)
    }

    /// The affine map of the running statistics.
    var runningAffine: ChannelAffine {
        affine(mean: runningMean.map(Double.init), variance: runningVariance.map(Double.init))
    }
}

/// Point-MAE's group encoder (mini-PointNet): per point
/// Conv1d(3→c1) → BN → ReLU → Conv1d(c1→c2); g = max over the group; per point
/// [g, h] → Conv1d(2·c2→c3) → BN → ReLU → Conv1d(c3→out); max over the group.
///
/// Exact restructurings (same outputs, fewer FLOPs and far less memory):
/// - the first BN's frame statistics follow in closed form from the mean and covariance of
///   the 3-d inputs, since the first convolution is linear;
/// - the [g, h] concat splits the 2·c2→c3 convolution into a per-group GEMM on g and a
///   per-point GEMM on h;
/// - the second BN's frame statistics follow from the first and second moments of h (each
///   group's mean and a SYRK over h centred on it, instead of a pass over the c3-wide
///   activations), the per-group term's spread and their cross term, since that
///   convolution is linear too;
/// - h is linear in r = ReLU(BN(conv1(x))) (no nonlinearity after conv2), so the per-point
///   half composes with conv2: h·W_pᵀ = r·(W_p·W2)ᵀ + W_p·b2, one c1→c3 GEMM on r, which is
///   recomputed from the 3-d inputs (cheap) — the frame's h is never stored;
/// - groups are processed in chunks that never materialise the c2- or c3-wide activations
///   of the whole frame;
/// - BatchNorm (frame or running statistics) is folded into the preceding convolution.
public struct MiniPointNet: Sendable {
    public let hidden1: Int, hidden2: Int, hidden3: Int, outChannels: Int
    public let mode: BatchNormMode
    /// Of the three wide convolutions (c1→c2, the per-point c2→c3 half, c3→out); the 3→c1
    /// convolution and the per-group half (together < 1 % of the FLOPs) stay fp32.
    public let precision: Precision
    let conv1: Linear, conv2: Linear, conv4: Linear
    /// The 2·c2→c3 convolution split into its global (first c2 inputs) and per-point halves.
    let conv3Global: [Float], conv3Point: [Float], conv3Bias: [Float]
    let bn1: BatchNorm, bn2: BatchNorm

    /// Groups per work chunk: 8 × 128 points (GEMMs of 1024 rows) keeps a chunk's
    /// activations within a few MB per core.
    static let chunkGroups = 8

    /// Loads `encoder.first_conv.{0,1,3}` and `encoder.second_conv.{0,1,3}`.
    public init(_ weights: SafeTensors, hidden1: Int, hidden2: Int, hidden3: Int, outChannels: Int,
                mode: BatchNormMode, eps: Float = 1e-5, precision: Precision = .fp32) throws {
        (self.hidden1, self.hidden2, self.hidden3, self.outChannels, self.mode) = (hidden1, hidden2, hidden3, outChannels, mode)
        self.precision = precision
        let p = "encoder"
        conv1 = try Linear(weights, "\(p).first_conv.0", in: 3, out: hidden1, weightShape: [hidden1, 3, 1])
        bn1 = try BatchNorm(weights, "\(p).first_conv.1", channels: hidden1, eps: eps)
        conv2 = try Linear(weights, "\(p).first_conv.3", in: hidden1, out: hidden2, weightShape: [hidden2, hidden1, 1],
                           precision: precision)
        let conv3 = try Linear(weights, "\(p).second_conv.0", in: 2 * hidden2, out: hidden3, weightShape: [hidden3, 2 * hidden2, 1])
        conv3Global = (0..<hidden3).flatMap { o in conv3.weight[(o * 2 * hidden2)..<(o * 2 * hidden2 + hidden2)] }
        conv3Point = (0..<hidden3).flatMap { o in conv3.weight[(o * 2 * hidden2 + hidden2)..<((o + 1) * 2 * hidden2)] }
        conv3Bias = conv3.bias!
        bn2 = try BatchNorm(weights, "\(p).second_conv.1", channels: hidden3, eps: eps)
        conv4 = try Linear(weights, "\(p).second_conv.3", in: hidden3, out: outChannels, weightShape: [outChannels, hidden3, 1],
                           precision: precision)
    }

    /// Buffers for `groups` groups of `members` points, reused across frames.
    public struct Workspace: Sendable {
        let groups: Int, members: Int
        let global: ScratchBuffer<Float>, globalTerm: ScratchBuffer<Float>
        /// Per worker: c1-, c2-, c3- and out-wide activations of one chunk.
        let h1Chunks: ScratchBuffer<Float>, h2Chunks: ScratchBuffer<Float>
        let h3Chunks: ScratchBuffer<Float>, h4Chunks: ScratchBuffer<Float>
        /// Second BN's frame statistics: each group's mean h̄ [groups, c2], and per worker the
        /// sum of (h − h̄)(h − h̄)ᵀ over the points of its chunks [c2, c2] (upper triangle).
        let groupMeans: ScratchBuffer<Float>, scatter: ScratchBuffer<Float>
    }

    public func makeWorkspace(groups: Int, members: Int) -> Workspace {
        let rows = Self.chunkGroups * members
        return Workspace(
            groups: groups, members: members,
            global: ScratchBuffer(count: groups * hidden2),
            globalTerm: ScratchBuffer(count: groups * hidden3),
            h1Chunks: ScratchBuffer(count: cpuCount * rows * hidden1),
            h2Chunks: ScratchBuffer(count: cpuCount * rows * hidden2),
            h3Chunks: ScratchBuffer(count: cpuCount * rows * hidden3),
            h4Chunks: ScratchBuffer(count: cpuCount * rows * outChannels),
            groupMeans: ScratchBuffer(count: groups * hidden2),
            scatter: ScratchBuffer(count: cpuCount * hidden2 * hidden2))
    }

    /// One token [groups, outChannels] per group of `neighborhoods` [groups, members, 3]
    /// (each point relative to its group's centre).
    public func encode(neighborhoods: Tensor, workspace ws: Workspace) -> Tensor {
        let (g, k) = (ws.groups, ws.members)
        precondition(neighborhoods.shape == [g, k, 3], "neighbourhoods must be [\(g), \(k), 3], got \(neighborhoods.shape)")
        let affine1 = mode == .frame ? bn1.affine(closedFormFor: conv1, inputs: neighborhoods) : bn1.runningAffine
        let first = affine1.fold(weight: conv1.weight, bias: conv1.bias!, inFeatures: 3)

        // Stage 1, per chunk: h = conv2(r), g = max over the group; in frame mode also each
        // group's mean of h and the scatter of h around it (the second BN's statistics).
        if mode == .frame { ws.scatter.zero() }
        forEachChunk(groups: g) { worker, range in
            let r = firstLayer(range, first, neighborhoods: neighborhoods, workspace: ws, worker: worker)
            let h = ws.h2Chunks[worker * Self.chunkGroups * k * hidden2]
            conv2.apply(rows: range.count * k, x: r, y: h)
            maxOverMembers(h, groups: range.count, members: k, channels: hidden2,
                           out: ws.global[range.lowerBound * hidden2])
            if mode == .frame { accumulateScatter(range, h: h, workspace: ws, worker: worker) }
        }
        // The per-group half of the split convolution: g·W_gᵀ + b.
        linear(rows: g, inFeatures: hidden2, outFeatures: hidden3, x: ws.global.base, weight: conv3Global, bias: conv3Bias,
               y: ws.globalTerm.base)

        let affine2 = mode == .frame ? secondStatistics(ws) : bn2.runningAffine
        let point = affine2.fold(weight: conv3Point, bias: [Float](repeating: 0, count: hidden3), inFeatures: hidden2)
        // The per-point half composed with conv2: W_p·W2 [c3, c1], and W_p·b2 joins the per-group term.
        var composed = [Float](repeating: 0, count: hidden3 * hidden1)
        gemm(m: hidden3, n: hidden1, k: hidden2, a: point.weight, lda: hidden2, b: conv2.weight, ldb: hidden1,
             c: &composed, ldc: hidden1)
        let conv2Bias = conv2.bias!
        let pointBias = (0..<hidden3).map { c in
            Float((0..<hidden2).reduce(0.0) { $0 + Double(point.weight[c * hidden2 + $1]) * Double(conv2Bias[$1]) })
        }
        // The composed weight depends on the frame's statistics: rounded to bf16 per frame (c3·c1 values).
        let composedBF16 = precision == .bf16 ? BF16Matrix(weight: composed, outFeatures: hidden3, inFeatures: hidden1) : nil
        let term = ws.globalTerm.base
        for r in 0..<g {
            for c in 0..<hidden3 {
                term[r * hidden3 + c] = term[r * hidden3 + c] * affine2.scale[c] + affine2.shift[c] + pointBias[c]
            }
        }

        // Stage 2, per chunk: out = max over the group of conv4(ReLU(BN(conv3([g, h])))).
        var tokens = Tensor(shape: [g, outChannels])
        tokens.withUnsafeMutableBufferPointer { out in
            forEachChunk(groups: g) { worker, range in
                let rows = range.count * k
                let r = firstLayer(range, first, neighborhoods: neighborhoods, workspace: ws, worker: worker)
                let h3 = ws.h3Chunks[worker * Self.chunkGroups * k * hidden3]
                let h4 = ws.h4Chunks[worker * Self.chunkGroups * k * outChannels]
                pointConvolution(range, r: r, weight: composed, bf16: composedBF16, workspace: ws, into: h3)
                reluInPlace(h3, count: rows * hidden3)
                conv4.apply(rows: rows, x: h3, y: h4)
                maxOverMembers(h4, groups: range.count, members: k, channels: outChannels,
                               out: out.baseAddress! + range.lowerBound * outChannels)
            }
        }
        return tokens
    }

    /// r = ReLU(BN(conv1(x))) [points, c1] of the groups in `range`, with `first` the folded
    /// conv1 + BN, into the worker's c1-wide chunk buffer (returned).
    private func firstLayer(_ range: Range<Int>, _ first: (weight: [Float], bias: [Float]), neighborhoods: Tensor,
                            workspace ws: Workspace, worker: Int) -> UnsafeMutablePointer<Float> {
        let rows = range.count * ws.members, r = ws.h1Chunks[worker * Self.chunkGroups * ws.members * hidden1]
        neighborhoods.withUnsafeBufferPointer { x in
            linear(rows: rows, inFeatures: 3, outFeatures: hidden1, x: x.baseAddress! + range.lowerBound * ws.members * 3,
                   weight: first.weight, bias: first.bias, y: r)
        }
        reluInPlace(r, count: rows * hidden1)
        return r
    }

    /// `h3 = r·W_cᵀ + globalTerm[group]` for the groups in `range` (W_c = W_p·W2 [c3, c1]), into `h3`;
    /// with the bf16 copy of `weight` in `bf16`, by the bf16 GEMM.
    private func pointConvolution(_ range: Range<Int>, r: UnsafePointer<Float>, weight: [Float], bf16: BF16Matrix?,
                                  workspace ws: Workspace,
                                  into h3: UnsafeMutablePointer<Float>) {
        let k = ws.members
        for (i, group) in range.enumerated() {
            let term = ws.globalTerm[group * hidden3]
            for m in 0..<k { (h3 + (i * k + m) * hidden3).update(from: term, count: hidden3) }
        }
        if let bf16 {
            bf16MatMul(m: range.count * k, a: r, lda: hidden1, weight: bf16, c: h3, ldc: hidden3, accumulate: true)
        } else {
            gemm(m: range.count * k, n: hidden3, k: hidden1, a: r, lda: hidden1,
                 b: weight, ldb: hidden1, transposeB: true, beta: 1, c: h3, ldc: hidden3)
        }
    }

    /// Each group's mean h̄ of `h` (the chunk's [points, c2]) into `groupMeans`, then
    /// Σ (h − h̄)(h − h̄)ᵀ into the worker's scatter (`h` is centred in place).
    private func accumulateScatter(_ range: Range<Int>, h: UnsafeMutablePointer<Float>, workspace ws: Workspace, worker: Int) {
        let (k, c2) = (ws.members, hidden2)
        for (i, group) in range.enumerated() {
            let mean = ws.groupMeans[group * c2], rows = h + i * k * c2
            mean.update(repeating: 0, count: c2)
            for m in 0..<k { for j in 0..<c2 { mean[j] += rows[m * c2 + j] } }
            for j in 0..<c2 { mean[j] /= Float(k) }
            for m in 0..<k { for j in 0..<c2 { rows[m * c2 + j] -= mean[j] } }
        }
        symmetricRankUpdate(n: c2, k: range.count * k, a: h, c: ws.scatter[worker * c2 * c2])
    }

    /// Frame statistics of the second BatchNorm, exactly, without its c3-wide inputs: per point
    /// x = W_p·h + T[group] (T = the per-group term), so with μ the mean of h, Σ its covariance,
    /// h̄ and T̄ per-group and overall means (all groups have the same size):
    /// mean = W_p·μ + T̄, variance_c = w_cᵀ Σ w_c + Var_g(T_c) + 2 w_c · Cov_g(h̄, T_c).
    /// Σ = (scatter within the groups, from stage 1) / points + the covariance of the group
    /// means. Float64 wherever values are combined across the frame.
    private func secondStatistics(_ ws: Workspace) -> ChannelAffine {
        let (g, k, c2, c3) = (ws.groups, ws.members, hidden2, hidden3)
        var mu = [Double](repeating: 0, count: c2)
        for group in 0..<g { for j in 0..<c2 { mu[j] += Double(ws.groupMeans.base[group * c2 + j]) } }
        mu = mu.map { $0 / Double(g) }

        // Centred per-group means and terms: the spread of the group means, and the cross
        // covariance C = (1/G) Σ_g (h̄ − μ)(T − T̄)ᵀ [c2, c3].
        var termMean = [Double](repeating: 0, count: c3)
        for group in 0..<g { for c in 0..<c3 { termMean[c] += Double(ws.globalTerm.base[group * c3 + c]) } }
        termMean = termMean.map { $0 / Double(g) }
        var centredMeans = [Float](repeating: 0, count: g * c2), centredTerms = [Float](repeating: 0, count: g * c3)
        var termVariance = [Double](repeating: 0, count: c3)
        for group in 0..<g {
            for j in 0..<c2 { centredMeans[group * c2 + j] = Float(Double(ws.groupMeans.base[group * c2 + j]) - mu[j]) }
            for c in 0..<c3 {
                let d = Double(ws.globalTerm.base[group * c3 + c]) - termMean[c]
                centredTerms[group * c3 + c] = Float(d)
                termVariance[c] += d * d / Double(g)
            }
        }
        var between = [Float](repeating: 0, count: c2 * c2)
        gemm(m: c2, n: c2, k: g, alpha: 1 / Float(g), a: centredMeans, lda: c2, transposeA: true,
             b: centredMeans, ldb: c2, c: &between, ldc: c2)
        var covariance = [Float](repeating: 0, count: c2 * c2)
        let n = Double(g * k)
        for a in 0..<c2 {
            for b in a..<c2 {
                let within = (0..<cpuCount).reduce(0.0) { $0 + Double(ws.scatter.base[$1 * c2 * c2 + a * c2 + b]) }
                covariance[a * c2 + b] = Float(within / n + Double(between[a * c2 + b]))
                covariance[b * c2 + a] = covariance[a * c2 + b]
            }
        }

        var cross = [Float](repeating: 0, count: c2 * c3)
        gemm(m: c2, n: c3, k: g, alpha: 1 / Float(g), a: centredMeans, lda: c2, transposeA: true,
             b: centredTerms, ldb: c3, c: &cross, ldc: c3)
        // W_p·Σ [c3, c2], then per channel w_c·(Σ w_c) and w_c·C[:, c].
        var weightedCovariance = [Float](repeating: 0, count: c3 * c2)
        gemm(m: c3, n: c2, k: c2, a: conv3Point, lda: c2, b: covariance, ldb: c2, c: &weightedCovariance, ldc: c2)

        var mean = [Double](repeating: 0, count: c3), variance = mean
        for c in 0..<c3 {
            var m = termMean[c], quadratic = 0.0, crossTerm = 0.0
            for j in 0..<c2 {
                let w = Double(conv3Point[c * c2 + j])
                m += w * mu[j]
                quadratic += w * Double(weightedCovariance[c * c2 + j])
                crossTerm += w * Double(cross[j * c3 + c])
            }
            mean[c] = m
            variance[c] = max(0, quadratic + termVariance[c] + 2 * crossTerm)
        }
        return bn2.affine(mean: mean, variance: variance)
    }

    /// Runs `body(worker, groups)` over chunks of `chunkGroups` groups on all cores.
    private func forEachChunk(groups: Int, _ body: (Int, Range<Int>) -> Void) {
        let chunks = (groups + Self.chunkGroups - 1) / Self.chunkGroups
        parallelWorkers(chunks) { worker, chunkRange in
            for chunk in chunkRange {
                body(worker, (chunk * Self.chunkGroups)..<min(groups, (chunk + 1) * Self.chunkGroups))
            }
        }
    }

    /// FLOPs of `encode` for `groups` × `members` points (with the frame statistics in frame mode).
    public func flops(groups: Int, members: Int) -> Double {
        let n = Double(groups * members)
        let frameStatistics = n * Double(hidden2 * (hidden2 + 1))  // the SYRK
            + 2 * Double(groups * hidden2 * (hidden3 + hidden2)) + 2 * Double(hidden3 * hidden2 * hidden2)
        // conv1 twice (stage 1, recomputed in stage 2), conv2, the composed c1→c3, conv4.
        return 2 * n * Double(2 * 3 * hidden1 + hidden1 * hidden2 + hidden1 * hidden3 + hidden3 * outChannels)
            + 2 * Double(groups * hidden2 * hidden3) + 2 * Double(hidden3 * hidden1 * hidden2)
            + (mode == .frame ? frameStatistics : 0)
    }
}

extension BatchNorm {
    /// Frame statistics of `conv(x)` over all points of `inputs` [..., 3], in closed form:
    /// mean = W·μ + b and variance = wᵀ Σ w per channel, with μ, Σ the inputs' mean and
    /// (biased) covariance — exact, because the convolution is linear.
    func affine(closedFormFor conv: Linear, inputs: Tensor) -> ChannelAffine {
        let n = inputs.count / 3
        var mu = [Double](repeating: 0, count: 3)
        for i in 0..<n { for j in 0..<3 { mu[j] += Double(inputs.scalars[3 * i + j]) } }
        mu = mu.map { $0 / Double(n) }
        var cov = [Double](repeating: 0, count: 9)
        for i in 0..<n {
            let d = (0..<3).map { Double(inputs.scalars[3 * i + $0]) - mu[$0] }
            for a in 0..<3 { for b in 0..<3 { cov[3 * a + b] += d[a] * d[b] } }
        }
        cov = cov.map { $0 / Double(n) }
        var mean = [Double](repeating: 0, count: conv.outFeatures), variance = mean
        for c in 0..<conv.outFeatures {
            let w = (0..<3).map { Double(conv.weight[3 * c + $0]) }
            mean[c] = Double(conv.bias![c]) + (0..<3).reduce(0) { $0 + w[$1] * mu[$1] }
            for a in 0..<3 { for b in 0..<3 { variance[c] += w[a] * w[b] * cov[3 * a + b] } }
        }
        return affine(mean: mean, variance: variance)
    }
}
