import CFMTensor

/// The foreground points of an organized cloud as an unorganized list, in row-major pixel
/// order, with the pixel each came from so per-point results can be scattered back.
public struct ForegroundPoints: Sendable, Equatable {
    /// Size of the pixel grid the points came from.
    public let height: Int
    public let width: Int
    /// [N, 3] coordinates in metres, in row-major pixel order.
    public let points: Tensor
    /// For each point, its row-major pixel index y · width + x (strictly ascending).
    public let pixelIndices: [Int]

    /// Collects the foreground points of `cloud` (all three coordinates non-zero).
    public init(of cloud: OrganizedCloud) {
        var pixels: [Int] = []
        var coordinates: [Float] = []
        pixels.reserveCapacity(cloud.pixelCount)
        coordinates.reserveCapacity(cloud.coordinates.count)
        for pixel in 0..<cloud.pixelCount where cloud.isForeground(pixel: pixel) {
            pixels.append(pixel)
            coordinates.append(contentsOf: cloud.coordinates[3 * pixel..<3 * pixel + 3])
        }
        height = cloud.height
        width = cloud.width
        points = Tensor(shape: [pixels.count, 3], scalars: coordinates)
        pixelIndices = pixels
    }

    /// Number of points N.
    public var count: Int { pixelIndices.count }

    /// Scatters per-point rows `values` [N, D] back onto the pixel grid: a
    /// [height, width, D] tensor (channels last) holding each point's row at its pixel and
    /// zeros everywhere else.
    public func scatter(_ values: Tensor) throws(GeometryError) -> Tensor {
        guard values.shape.count == 2, values.shape[0] == count else {
            throw .shapeMismatch(argument: "per-point values", expected: "[\(count), D]", found: values.shape)
        }
        let channels = values.shape[1]
        var grid = Tensor(shape: [height, width, channels])
        guard channels > 0 else { return grid }
        values.withUnsafeBufferPointer { src in
            grid.withUnsafeMutableBufferPointer { dst in
                for (n, pixel) in pixelIndices.enumerated() {
                    (dst.baseAddress! + pixel * channels).update(from: src.baseAddress! + n * channels, count: channels)
                }
            }
        }
        return grid
    }
}
