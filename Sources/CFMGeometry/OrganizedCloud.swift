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
        try Self.requireShape(height: height, width: width, values: coordinates.count)
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

    /// `values` coordinates are [height · width · 3] (non-negative sides, no overflow).
    static func requireShape(height: Int, width: Int, values: Int) throws(GeometryError) {
        let (pixels, pixelsOverflow) = height.multipliedReportingOverflow(by: width)
        let (expected, valuesOverflow) = pixels.multipliedReportingOverflow(by: 3)
        guard height >= 0, width >= 0, !pixelsOverflow, !valuesOverflow, values == expected else {
            throw .shapeMismatch(argument: "organized cloud coordinates", expected: "[\(height), \(width), 3]", found: [values])
        }
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
    public var foregroundCount: Int { coordinates.withUnsafeBufferPointer(Self.foregroundCount) }

    /// Number of foreground points among `coordinates` ([N · 3]).
    static func foregroundCount(_ coordinates: UnsafeBufferPointer<Float>) -> Int {
        stride(from: 0, to: coordinates.count, by: 3).reduce(0) {
            $0 + (coordinates[$1] != 0 && coordinates[$1 + 1] != 0 && coordinates[$1 + 2] != 0 ? 1 : 0)
        }
    }

    /// Calls `body` with a view of the cloud's own coordinates (valid only during the call):
    /// what the view's kernels write is written into `coordinates`.
    public mutating func withView<R, E: Error>(_ body: (OrganizedCloudView) throws(E) -> R) throws(E) -> R {
        let (h, w) = (height, width)
        return try coordinates.withUnsafeMutableBufferPointer { (c) throws(E) -> R in
            try body(OrganizedCloudView(unchecked: h, w, c))
        }
    }
}

/// A pixel-registered point cloud in memory its owner lends for the length of a call: an
/// `OrganizedCloud`'s array (`OrganizedCloud.withView`), or a buffer the caller owns — the
/// geometry part of a received frame message, converted and cleaned where it arrived, so
/// preprocessing makes no copy at the sensor's resolution. Same layout and rules as
/// `OrganizedCloud` (row-major [height, width, 3] Float32 in metres, (0, 0, 0) where nothing
/// was measured); the kernels that edit a cloud in place (background removal) run on it.
///
/// The view does not keep its memory alive and does not copy on write: use it only inside
/// the call that made it, while nothing else reads or writes that memory.
public struct OrganizedCloudView {
    public let height: Int
    public let width: Int
    /// Row-major [height · width · 3] coordinates in metres; the editing kernels write them.
    public let coordinates: UnsafeMutableBufferPointer<Float>

    /// Views `coordinates`, which must hold [height · width · 3] values.
    public init(height: Int, width: Int, coordinates: UnsafeMutableBufferPointer<Float>) throws(GeometryError) {
        try OrganizedCloud.requireShape(height: height, width: width, values: coordinates.count)
        self.init(unchecked: height, width, coordinates)
    }

    /// A view whose shape is known to be right.
    fileprivate init(unchecked height: Int, _ width: Int, _ coordinates: UnsafeMutableBufferPointer<Float>) {
        (self.height, self.width, self.coordinates) = (height, width, coordinates)
    }

    /// Number of pixels, `height · width`.
    public var pixelCount: Int { height * width }

    /// Number of foreground points.
    public var foregroundCount: Int { OrganizedCloud.foregroundCount(UnsafeBufferPointer(coordinates)) }
}
