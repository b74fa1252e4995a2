import CFMTensor

/// An object lying on the table, in its own frame: (u, v) in metres on the table plane with the
/// origin at the object's centre, heights in metres above the table. The top surface is a height
/// field; seen from a camera above the object's interior its outer walls face away and stay hidden.
protocol SyntheticPart: Sendable {
    /// A random nominal part; `scale` (about 0.95–1.05) multiplies its size.
    init(scale: Float, using random: inout SeededRandom)
    /// Height of the top surface above the table at `p`; 0 off the part.
    func height(at p: SIMD2<Float>) -> Float
    /// Surface colour (linear RGB in 0…1) at `p` on the part.
    func albedo(at p: SIMD2<Float>) -> SIMD3<Float>
    /// Strength of the specular highlight at `p` (0 for matte surfaces).
    func specular(at p: SIMD2<Float>) -> Float
    /// Signed distance to the footprint's outline (< 0 inside).
    func footprintDistance(_ p: SIMD2<Float>) -> Float
    /// Radius of a disc around the origin that holds the footprint.
    var boundingRadius: Float { get }
    /// An upper bound of `height`.
    var maxHeight: Float { get }
    /// The nominal range of the part's rotation about the table normal (radians).
    static var yawRange: ClosedRange<Float> { get }
    /// Breaks the part's pairing of geometry and texture in one place, so that each modality alone
    /// still looks nominal; returns where.
    mutating func addCrossmodalDefect(using random: inout SeededRandom) -> DefectFootprint
}

/// A part with surface defects applied: what the renderer sees.
struct DefectivePart<Part: SyntheticPart>: Sendable {
    var part: Part
    /// Defects, including ground-truth-only regions of crossmodal defects.
    var defects: [SurfaceDefect] = []

    func height(at p: SIMD2<Float>) -> Float {
        let h = part.height(at: p)
        guard h > 0 else { return 0 }
        return defects.reduce(h) { $0 + $1.heightChange(at: p) }
    }

    func albedo(at p: SIMD2<Float>) -> SIMD3<Float> {
        defects.reduce(part.albedo(at: p)) { $1.painted($0, at: p) }
    }

    /// Whether `p` belongs to a defect (the ground truth).
    func isAnomalous(at p: SIMD2<Float>) -> Bool { defects.contains { $0.region.contains(p) } }

    /// Adds a defect made by `make` at a random site where it lies well inside the footprint.
    mutating func addDefect(using random: inout SeededRandom,
                            _ make: (SIMD2<Float>, inout SeededRandom) -> SurfaceDefect) {
        var defect = make(.zero, &random)
        for _ in 0..<200 {
            let site = rotated(SIMD2(part.boundingRadius * random.uniform().squareRoot(), 0), by: random.angle())
            defect = make(site, &random)
            let bounds = defect.region.bounds
            if part.footprintDistance(bounds.center) < -(bounds.radius + 0.004) { break }
        }
        defects.append(defect)
    }
}
