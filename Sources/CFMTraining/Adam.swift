/// PyTorch's `torch.optim.Adam` (no weight decay, no AMSGrad) over a list of parameter
/// tensors: `p ← p − lr/(1−β₁ᵗ) · m / (√v / √(1−β₂ᵗ) + ε)`, the same operation order.
public struct Adam: Sendable {
    public var learningRate: Float = 1e-3
    /// Hyper-parameters in Float64, as PyTorch holds them (Python floats).
    public var beta1 = 0.9, beta2 = 0.999, eps = 1e-8
    /// Steps taken so far.
    public private(set) var step = 0
    private var m: [[Float]], v: [[Float]]

    /// An optimiser for parameters of the given sizes.
    public init(sizes: [Int], learningRate: Float = 1e-3) {
        self.learningRate = learningRate
        m = sizes.map { [Float](repeating: 0, count: $0) }
        v = m
    }

    /// One update of `parameters` with `gradients` (same shapes).
    public mutating func update(_ parameters: inout [[Float]], gradients: [[Float]]) {
        precondition(parameters.count == m.count && gradients.count == m.count, "parameter list changed")
        step += 1
        let c2 = Float((1 - beta2.power(step)).squareRoot())
        let stepSize = Float(Double(learningRate) / (1 - beta1.power(step)))
        let (b1, b2, a1, a2, e) = (Float(beta1), Float(beta2), Float(1 - beta1), Float(1 - beta2), Float(eps))
        for t in 0..<parameters.count {
            precondition(parameters[t].count == m[t].count && gradients[t].count == m[t].count, "tensor \(t) changed size")
            gradients[t].withUnsafeBufferPointer { g in
                m[t].withUnsafeMutableBufferPointer { m in
                    v[t].withUnsafeMutableBufferPointer { v in
                        parameters[t].withUnsafeMutableBufferPointer { p in
                            for i in 0..<m.count {
                                m[i] = m[i] * b1 + a1 * g[i]
                                v[i] = v[i] * b2 + a2 * (g[i] * g[i])
                                p[i] -= stepSize * m[i] / (v[i].squareRoot() / c2 + e)
                            }
                        }
                    }
                }
            }
        }
    }
}

extension Double {
    fileprivate func power(_ n: Int) -> Double { (0..<n).reduce(1) { r, _ in r * self } }
}
