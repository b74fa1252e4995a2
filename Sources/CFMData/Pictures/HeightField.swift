import CFMTensor

/// Height above the support plane per sensor pixel, for the overlay panel's middle tile.
public struct HeightField: Sendable, Equatable {
    public let height: Int, width: Int
    /// height × width values, row-major, in metres above the plane (positive on the sensor's
    /// side); NaN where the sensor measured nothing.
    public var metres: [Float]

    public init(height: Int, width: Int, metres: [Float]) {
        precondition(metres.count == height * width, "\(metres.count) heights for \(height)×\(width)")
        (self.height, self.width, self.metres) = (height, width, metres)
    }

    /// Heights of an organized cloud [H, W, 3] (in units of `metresPerUnit` metres; (0, 0, 0) =
    /// no measurement) above the plane n·p + d = 0 (p in metres, unit normal n towards the sensor).
    public init(cloud: Tensor, metresPerUnit: Float, planeNormal: SIMD3<Double>, planeOffset: Double) {
        precondition(cloud.shape.count == 3 && cloud.shape[2] == 3, "cloud \(cloud.shape) is not [H, W, 3]")
        let (h, w) = (cloud.shape[0], cloud.shape[1])
        var metres = [Float](repeating: .nan, count: h * w)
        let scale = Double(metresPerUnit)
        for p in 0..<(h * w) {
            let point = SIMD3(Double(cloud.scalars[3 * p]), Double(cloud.scalars[3 * p + 1]), Double(cloud.scalars[3 * p + 2]))
            guard point != .zero else { continue }
            metres[p] = Float((planeNormal * point * scale).sum() + planeOffset)
        }
        self.init(height: h, width: w, metres: metres)
    }
}
