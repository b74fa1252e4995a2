/// Smooth 2D value noise and its fractal sum, for procedural textures and surface undulation.
/// Deterministic from the seed; output roughly in [−1, 1].
struct ValueNoise: Sendable {
    let seed: UInt64

    /// The lattice value at integer point (i, j), uniform in [−1, 1].
    private func lattice(_ i: Int, _ j: Int) -> Float {
        let h = mix(mix(seed, UInt64(bitPattern: Int64(i))), UInt64(bitPattern: Int64(j)))
        return Float(h >> 40) * 0x1p-23 - 1
    }

    /// Noise with features about one unit apart.
    func sample(_ p: SIMD2<Float>) -> Float {
        let fx = p.x.rounded(.down), fy = p.y.rounded(.down)
        let (i, j) = (Int(fx), Int(fy))
        let tx = smoothstep(0, 1, p.x - fx), ty = smoothstep(0, 1, p.y - fy)
        let top = lattice(i, j) + (lattice(i + 1, j) - lattice(i, j)) * tx
        let bottom = lattice(i, j + 1) + (lattice(i + 1, j + 1) - lattice(i, j + 1)) * tx
        return top + (bottom - top) * ty
    }

    /// Sum of `octaves` noises of halving size and amplitude, normalised to about [−1, 1].
    func fractal(_ p: SIMD2<Float>, octaves: Int = 3) -> Float {
        var sum: Float = 0, amplitude: Float = 1, total: Float = 0, q = p
        for _ in 0..<octaves {
            sum += amplitude * sample(q)
            total += amplitude
            amplitude *= 0.5
            q = q * 2.03 + SIMD2(17.1, 5.3)
        }
        return sum / total
    }
}
