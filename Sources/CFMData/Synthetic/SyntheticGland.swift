import CFMTensor
import Foundation

/// A cable-gland-like part: a dark plastic hex nut 11–13 mm high with chamfered edges, a metal
/// collar and a shiny metal dome with a cable hole on top. White tick marks are printed on the
/// flat hex face. The crossmodal cue: marks only ever lie on the flat face, never on the dome.
struct SyntheticGland: SyntheticPart {
    /// Circumradius of the hexagon.
    let hexRadius: Float
    let hexHeight: Float
    let chamfer: Float = 0.0015
    let collarHeight: Float = 0.006
    let domeHeight: Float
    let holeRadius: Float = 0.0035, holeDepth: Float = 0.004
    let grain: ValueNoise
    /// White marks on the hex face, and any misprinted onto the dome (crossmodal defect).
    let faceMarks: [DefectFootprint]
    var domeMarks: [DefectFootprint] = []

    var collarRadius: Float { 0.6 * hexRadius }
    var domeRadius: Float { 0.5 * hexRadius }

    init(scale: Float, using random: inout SeededRandom) {
        let hexRadius = 0.072 * scale
        self.hexRadius = hexRadius
        hexHeight = random.uniform(0.011, 0.013)
        domeHeight = random.uniform(0.014, 0.018)
        grain = ValueNoise(seed: random.next())
        // A tick at the middle of every face (the flat sides face ±v) and a legend beside one of them.
        var marks = (0..<6).map { k -> DefectFootprint in
            let direction = rotated(SIMD2(0, 1), by: Float(k) * .pi / 3)
            return .stroke(from: direction * 0.67 * hexRadius, to: direction * 0.79 * hexRadius, halfWidth: 0.0008)
        }
        for offset: Float in [-0.012, -0.006, 0.006, 0.012] {
            let center = rotated(SIMD2(offset, 0.73 * hexRadius), by: .pi / 3)
            let along = rotated(SIMD2(0.0022, 0), by: .pi / 3)
            marks.append(.stroke(from: center - along, to: center + along, halfWidth: 0.0007))
        }
        faceMarks = marks
    }

    static let yawRange: ClosedRange<Float> = 0...(2 * .pi)
    var boundingRadius: Float { hexRadius * 1.01 }
    var maxHeight: Float { hexHeight + collarHeight + domeHeight + 0.004 }

    func footprintDistance(_ p: SIMD2<Float>) -> Float {
        hexagonDistance(p, inradius: hexRadius * 0.866_025_4)
    }

    func height(at p: SIMD2<Float>) -> Float {
        let outline = footprintDistance(p)
        guard outline < 0 else { return 0 }
        let r = length(p)
        if r >= collarRadius { return hexHeight - max(0, chamfer + outline) }
        var h = hexHeight + collarHeight
        if r < domeRadius {
            let q = r / domeRadius
            h += domeHeight * (1 - q * q).squareRoot()
        }
        if r < holeRadius { h -= holeDepth }
        return h
    }

    func albedo(at p: SIMD2<Float>) -> SIMD3<Float> {
        let r = length(p)
        let white = SIMD3<Float>(0.90, 0.90, 0.86)
        if domeMarks.contains(where: { $0.contains(p) }) { return white }
        if r < holeRadius { return SIMD3(repeating: 0.04) }
        if r < collarRadius {
            // Brushed metal: streaks around the axis.
            let streaks = grain.sample(SIMD2(atan2(p.y, p.x) * 40, r / 0.01))
            return SIMD3<Float>(0.60, 0.61, 0.64) * (1 + 0.06 * streaks)
        }
        if faceMarks.contains(where: { $0.contains(p) }) { return white }
        return SIMD3<Float>(0.17, 0.17, 0.19) * (1 + 0.06 * grain.fractal(p / 0.003))
    }

    func specular(at p: SIMD2<Float>) -> Float { length(p) < collarRadius ? 0.35 : 0.05 }

    /// A white tick printed onto the dome (a curved area).
    mutating func addCrossmodalDefect(using random: inout SeededRandom) -> DefectFootprint {
        let center = rotated(SIMD2(domeRadius * (0.3 + 0.45 * random.uniform().squareRoot()), 0), by: random.angle())
        let along = rotated(SIMD2(0.005, 0), by: random.angle())
        let mark = DefectFootprint.stroke(from: center - along, to: center + along, halfWidth: 0.0008)
        domeMarks.append(mark)
        return mark
    }
}
