import CFMTensor
import Foundation

/// Where a defect lies on a part, in the part's frame (metres).
enum DefectFootprint: Sendable {
    /// A disc whose radius wobbles with the angle (stains, dents, bumps).
    case blob(center: SIMD2<Float>, radius: Float, wobble: [SIMD2<Float>])
    /// A thick line segment (scratches, grooves, printed marks).
    case stroke(from: SIMD2<Float>, to: SIMD2<Float>, halfWidth: Float)

    /// A disc of `radius` with a random irregular outline.
    static func randomBlob(center: SIMD2<Float>, radius: Float, using random: inout SeededRandom) -> DefectFootprint {
        .blob(center: center, radius: radius, wobble: (0..<3).map { _ in SIMD2(random.uniform(0, 0.12), random.angle()) })
    }

    /// Distance from the region's core relative to its size: < 1 inside, 0 at the centre line.
    func relativeDistance(_ p: SIMD2<Float>) -> Float {
        switch self {
        case let .blob(center, radius, wobble):
            let d = p - center
            let angle = atan2(d.y, d.x)
            var scale: Float = 1
            for (k, term) in wobble.enumerated() { scale += term.x * sin(Float(k + 2) * angle + term.y) }
            return length(d) / (radius * scale)
        case let .stroke(from, to, halfWidth):
            return distanceToSegment(p, from, to) / halfWidth
        }
    }

    func contains(_ p: SIMD2<Float>) -> Bool { relativeDistance(p) < 1 }

    /// A circle around the region (centre, radius) for placement checks.
    var bounds: (center: SIMD2<Float>, radius: Float) {
        switch self {
        case let .blob(center, radius, _): (center, radius * 1.4)
        case let .stroke(from, to, halfWidth): ((from + to) / 2, length(to - from) / 2 + halfWidth)
        }
    }
}

/// One defect: a region of the part whose height and/or colour departs from the nominal part.
/// Regions with neither (crossmodal defects, which change the part itself) only mark the ground truth.
struct SurfaceDefect: Sendable {
    var region: DefectFootprint
    /// Height change at the core (metres): negative for dents and grooves, positive for bumps.
    var relief: Float = 0
    /// Colour painted over the region, and how opaque it is.
    var paint: SIMD3<Float>? = nil
    var opacity: Float = 1

    /// The relief at `p`: full inside 60 % of the region, easing to 0 at its outline.
    func heightChange(at p: SIMD2<Float>) -> Float {
        guard relief != 0 else { return 0 }
        return relief * (1 - smoothstep(0.6, 1, region.relativeDistance(p)))
    }

    /// `albedo` with this defect's paint applied at `p`.
    func painted(_ albedo: SIMD3<Float>, at p: SIMD2<Float>) -> SIMD3<Float> {
        guard let paint, region.contains(p) else { return albedo }
        return albedo + (paint - albedo) * opacity
    }
}

extension SurfaceDefect {
    /// Stain colours: oil, rust, blue ink, white residue.
    private static let stains: [SIMD3<Float>] = [[0.10, 0.08, 0.05], [0.55, 0.25, 0.08], [0.12, 0.20, 0.55], [0.92, 0.92, 0.90]]

    /// An RGB-only defect at `site`: a stain or a scratch.
    static func color(at site: SIMD2<Float>, using random: inout SeededRandom) -> SurfaceDefect {
        if random.uniform() < 0.5 {
            return SurfaceDefect(region: .randomBlob(center: site, radius: random.uniform(0.004, 0.009), using: &random),
                                 paint: random.pick(stains), opacity: random.uniform(0.6, 0.85))
        }
        return SurfaceDefect(region: randomStroke(at: site, halfWidth: random.uniform(0.0006, 0.001), using: &random),
                             paint: [0.95, 0.95, 0.93], opacity: random.uniform(0.5, 0.75))
    }

    /// A 3D-only defect at `site`: a dent, a bump or a groove, with the nominal texture.
    static func shape(at site: SIMD2<Float>, using random: inout SeededRandom) -> SurfaceDefect {
        switch random.integer(0...2) {
        case 0: SurfaceDefect(region: .randomBlob(center: site, radius: random.uniform(0.005, 0.009), using: &random),
                              relief: -random.uniform(0.0018, 0.003))
        case 1: SurfaceDefect(region: .randomBlob(center: site, radius: random.uniform(0.005, 0.009), using: &random),
                              relief: random.uniform(0.0018, 0.003))
        default: SurfaceDefect(region: randomStroke(at: site, halfWidth: random.uniform(0.0012, 0.0018), using: &random),
                               relief: -random.uniform(0.0015, 0.0025))
        }
    }

    /// A defect seen in both modalities at `site`: a burnt dent, a discoloured crack or a stained bump.
    static func combined(at site: SIMD2<Float>, using random: inout SeededRandom) -> SurfaceDefect {
        var defect = shape(at: site, using: &random)
        defect.paint = defect.relief < 0 ? [0.12, 0.09, 0.07] : random.pick(stains)
        defect.opacity = random.uniform(0.6, 0.85)
        return defect
    }

    /// A stroke of random direction and length 15–30 mm centred on `site`.
    private static func randomStroke(at site: SIMD2<Float>, halfWidth: Float, using random: inout SeededRandom) -> DefectFootprint {
        let half = rotated(SIMD2(random.uniform(0.0075, 0.015), 0), by: random.angle())
        return .stroke(from: site - half, to: site + half, halfWidth: halfWidth)
    }
}
