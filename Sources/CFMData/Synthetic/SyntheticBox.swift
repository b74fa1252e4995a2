import CFMTensor
import Foundation

/// A kraft-cardboard box 24–30 mm high with rounded corners and top edges, two embossed round
/// buttons, and a print on its flat top: a white label with lines of text and a red logo.
/// The crossmodal cue: print only ever lies on the flat areas, never on a button.
struct SyntheticBox: SyntheticPart {
    let halfSize: SIMD2<Float>
    let boxHeight: Float
    let cornerRadius: Float = 0.006
    /// Rounding radius of the top edges.
    let edge: Float = 0.005
    let buttons: [SIMD2<Float>]
    let buttonRadius: Float = 0.010, buttonHeight: Float = 0.003
    /// Printing tolerance: where and at what angle the print landed.
    let printShift: SIMD2<Float>, printAngle: Float
    let fibres: ValueNoise
    /// The button that got the logo printed on it (crossmodal defect).
    var logoOnButton: Int?

    /// The label's text: per line, its height in label units and the word extents along it.
    /// Fixed for the class (it is the product's print), with the label's half-size as unit.
    private static let textLines: [(y: Float, words: [ClosedRange<Float>])] = {
        var random = SeededRandom(seed: nameSeed("box.label"))
        return (0..<5).map { line in
            var words = [ClosedRange<Float>](), x: Float = -0.85
            while x < 0.7 {
                let end = min(x + random.uniform(0.15, 0.45), 0.85)
                words.append(x...end)
                x = end + random.uniform(0.08, 0.14)
            }
            return (Float(line) * 0.34 - 0.68, words)
        }
    }()

    init(scale: Float, using random: inout SeededRandom) {
        let a = 0.066 * scale
        halfSize = SIMD2(a, a * random.uniform(0.76, 0.82))
        boxHeight = random.uniform(0.024, 0.030)
        buttons = [SIMD2(0.62 * halfSize.x, 0.5 * halfSize.y), SIMD2(0.62 * halfSize.x, -0.5 * halfSize.y)]
        printShift = SIMD2(random.uniform(-0.0015, 0.0015), random.uniform(-0.0015, 0.0015))
        printAngle = random.uniform(-0.02, 0.02)
        fibres = ValueNoise(seed: random.next())
    }

    static let yawRange: ClosedRange<Float> = (-0.17)...0.17
    var boundingRadius: Float { length(halfSize) }
    var maxHeight: Float { boxHeight + buttonHeight + 0.0005 }

    func footprintDistance(_ p: SIMD2<Float>) -> Float {
        roundedRectangleDistance(p, half: halfSize, radius: cornerRadius)
    }

    func height(at p: SIMD2<Float>) -> Float {
        let outline = footprintDistance(p)
        guard outline < 0 else { return 0 }
        var h = boxHeight
        let depth = -outline
        if depth < edge { h -= edge - (edge * edge - (edge - depth) * (edge - depth)).squareRoot() }
        for button in buttons {
            let d = length(p - button) / buttonRadius
            if d < 1 { h += buttonHeight * (1 - d * d) }
        }
        return h
    }

    func albedo(at p: SIMD2<Float>) -> SIMD3<Float> {
        let kraft = SIMD3<Float>(0.66, 0.52, 0.36) * (1 + 0.08 * fibres.fractal(SIMD2(p.x / 0.02, p.y / 0.0015)))
        let logo = SIMD3<Float>(0.80, 0.14, 0.12)
        if let i = logoOnButton, length(p - buttons[i]) < 0.9 * buttonRadius { return logo }
        let q = rotated(p - printShift, by: -printAngle)
        if length(q - SIMD2(0.3 * halfSize.x, 0)) < 0.009 { return logo }
        let labelCenter = SIMD2(-0.3 * halfSize.x, 0), labelHalf = SIMD2(0.45 * halfSize.x, 0.68 * halfSize.y)
        let l = (q - labelCenter) / labelHalf
        guard abs(l.x) < 1, abs(l.y) < 1 else { return kraft }
        for line in Self.textLines where abs(l.y - line.y) * labelHalf.y < 0.0012 {
            if line.words.contains(where: { $0.contains(l.x) }) { return SIMD3(0.08, 0.08, 0.10) }
        }
        return SIMD3(0.90, 0.90, 0.86)
    }

    func specular(at p: SIMD2<Float>) -> Float { 0.03 }

    /// The red logo printed onto a button (a curved area).
    mutating func addCrossmodalDefect(using random: inout SeededRandom) -> DefectFootprint {
        let i = random.integer(0...(buttons.count - 1))
        logoOnButton = i
        return .blob(center: buttons[i], radius: 0.9 * buttonRadius, wobble: [])
    }
}
