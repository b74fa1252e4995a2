import CFMTensor
import Foundation

/// A baked cookie: a slightly irregular disc 12–15 mm thick with a rounded rim, a gently domed,
/// undulating top and golden dough darker towards the rim. Its chocolate chips are the
/// crossmodal cue: every chip is both raised (3D) and dark (RGB).
struct SyntheticCookie: SyntheticPart {
    struct Chip: Sendable {
        var center: SIMD2<Float>
        var radius: Float
        /// Height above the dough (0 = flat).
        var relief: Float
        var isDark: Bool
    }

    let radius: Float
    let thickness: Float
    /// Rounding radius of the top edge.
    let rim: Float = 0.004
    let dome: Float
    /// Outline irregularity: amplitude and phase of the 3rd and 5th angular harmonics.
    let outline: [SIMD2<Float>]
    let surface: ValueNoise, crumb: ValueNoise
    /// Baking level: shifts the dough colour.
    let baking: Float
    var chips: [Chip]

    init(scale: Float, using random: inout SeededRandom) {
        radius = 0.066 * scale
        thickness = random.uniform(0.012, 0.015)
        dome = random.uniform(0.0015, 0.003)
        outline = [SIMD2(random.uniform(0, 0.02), random.angle()), SIMD2(random.uniform(0, 0.015), random.angle())]
        surface = ValueNoise(seed: random.next())
        crumb = ValueNoise(seed: random.next())
        baking = random.uniform(-0.06, 0.06)
        chips = []
        let count = random.integer(7...11)
        for _ in 0..<(count * 30) where chips.count < count {
            let r = random.uniform(0.0035, 0.0055)
            let c = rotated(SIMD2((radius - 0.012) * random.uniform().squareRoot(), 0), by: random.angle())
            if chips.allSatisfy({ length($0.center - c) > 2.5 * max($0.radius, r) }) {
                chips.append(Chip(center: c, radius: r, relief: random.uniform(0.0015, 0.0025), isDark: true))
            }
        }
    }

    static let yawRange: ClosedRange<Float> = 0...(2 * .pi)
    var boundingRadius: Float { radius * 1.04 }
    var maxHeight: Float { thickness + dome + 0.0035 }

    func footprintDistance(_ p: SIMD2<Float>) -> Float {
        let angle = atan2(p.y, p.x)
        let wobble = 1 + outline[0].x * sin(3 * angle + outline[0].y) + outline[1].x * sin(5 * angle + outline[1].y)
        return length(p) - radius * wobble
    }

    /// The chip covering `p`, if any.
    private func chip(at p: SIMD2<Float>) -> (chip: Chip, distance: Float)? {
        for chip in chips {
            let d = length(p - chip.center) / chip.radius
            if d < 1 { return (chip, d) }
        }
        return nil
    }

    func height(at p: SIMD2<Float>) -> Float {
        let r = length(p) / radius
        // The outline wobbles by at most 3.5 %: well inside it, skip the outline and the rim.
        let depth = r < 0.96 - rim / radius ? rim : -footprintDistance(p)
        guard depth > 0 else { return 0 }
        var h = thickness + dome * (1 - r * r) + 0.0004 * surface.fractal(p / 0.006)
        if depth < rim { h -= rim - (rim * rim - (rim - depth) * (rim - depth)).squareRoot() }
        if let (chip, d) = chip(at: p) { h += chip.relief * (1 - d * d).squareRoot() }
        return h
    }

    func albedo(at p: SIMD2<Float>) -> SIMD3<Float> {
        if let (chip, _) = chip(at: p), chip.isDark {
            return SIMD3(0.22, 0.12, 0.07) * (1 + 0.1 * crumb.sample(p / 0.001))
        }
        let rimDarkening = 1 - 0.3 * smoothstep(0.7, 1.0, length(p) / radius)
        let dough = SIMD3<Float>(0.80, 0.58, 0.32) - SIMD3(0.05, 0.08, 0.08) * baking * 4
        let speckle: Float = crumb.sample(p / 0.0008) > 0.75 ? 0.8 : 1
        return dough * rimDarkening * speckle * (1 + 0.12 * crumb.fractal(p / 0.004))
    }

    func specular(at p: SIMD2<Float>) -> Float { 0 }

    /// A chip that is raised but not dark, or dark but flat.
    mutating func addCrossmodalDefect(using random: inout SeededRandom) -> DefectFootprint {
        let i = random.integer(0...(chips.count - 1))
        if random.uniform() < 0.5 { chips[i].isDark = false } else { chips[i].relief = 0 }
        return .blob(center: chips[i].center, radius: chips[i].radius, wobble: [])
    }
}
