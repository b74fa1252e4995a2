import CFMTensor

/// A pixel-registered point cloud: `height × width` pixels, each an (x, y, z) point in
/// metres in the camera frame, (0, 0, 0) where the sensor measured nothing.
///
/// A pixel holds a **foreground point** iff all three of its coordinates are non-zero
/// (the authors' rule); a pixel with only some zero coordinates is background too.
public struct OrganizedCloud: Sendable, Equatable {
    public let height: Int
    public let width: Int
    /// Row-major [height, width, 3] Float32 coordinates in metres.
    public var coordinates: [Float]

    /// Wraps `coordinates` ([height · width · 3] values, row-major pixels, metres).
    public init(height: Int, width: Int, coordinates: [Float]) throws(GeometryError) {
        let (pixels, pixelsOverflow) = height.multipliedReportingOverflow(by: width)
        let (values, valuesOverflow) = pixels.multipliedReportingOverflow(by: 3)
        guard height >= 0, width >= 0, !pixelsOverflow, !valuesOverflow, coordinates.count == values else {
            throw .shapeMismatch(argument: "organized cloud coordinates", expected: "[\(height), \(width), 3]",
                                 found: [coordinates.count])
        }
        self.height = height
        self.width = width
        self.coordinates = coordinates
    }

    /// Wraps a [height, width, 3] tensor in metres.
    public init(_ tensor: Tensor) throws(GeometryError) {
        guard tensor.shape.count == 3, tensor.shape[2] == 3 else {
            throw .shapeMismatch(argument: "organized cloud", expected: "[height, width, 3]", found: tensor.shape)
        }
        try self.init(height: tensor.shape[0], width: tensor.shape[1], coordinates: tensor.scalars)
    }

    /// The cloud as a [height, width, 3] tensor.
    public var tensor: Tensor { Tensor(shape: [height, width, 3], scalars: coordinates) }

    /// Number of pixels, `height · width`.
    public var pixelCount: Int { height * width }

    /// Whether pixel `pixel` (row-major index y · width + x) holds a foreground point.
    public func isForeground(pixel: Int) -> Bool {
        let i = 3 * pixel
        return coordinates[i] != 0 && coordinates[i + 1] != 0 && coordinates[i + 2] != 0
    }

    /// Number of foreground points.
    public var foregroundCount: Int {
        (0..<pixelCount).reduce(0) { $0 + (isForeground(pixel: $1) ? 1 : 0) }
    }
}
