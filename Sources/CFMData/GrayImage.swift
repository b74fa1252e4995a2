/// An 8-bit single-channel image (ground-truth masks: 0 = nominal, 255 = anomalous), row-major:
/// pixel (y, x) is `bytes[y * width + x]`.
public struct GrayImage: Sendable, Equatable {
    public let height: Int
    public let width: Int
    /// height × width bytes.
    public var bytes: [UInt8]

    /// Wraps `bytes`; the count must be height × width.
    public init(height: Int, width: Int, bytes: [UInt8]) {
        precondition(height >= 0 && width >= 0 && bytes.count == height * width,
                     "\(bytes.count) bytes for a \(height)×\(width) grey image")
        self.height = height
        self.width = width
        self.bytes = bytes
    }

    /// An image of `height` × `width` pixels, all equal to `value`.
    public init(height: Int, width: Int, repeating value: UInt8) {
        self.init(height: height, width: width, bytes: [UInt8](repeating: value, count: height * width))
    }
}
