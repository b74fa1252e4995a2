import CFMTensor

/// An 8-bit RGB image, row-major and interleaved: channel c of pixel (y, x) is
/// `bytes[(y * width + x) * 3 + c]`.
public struct RGBImage: Sendable, Equatable {
    public let height: Int
    public let width: Int
    /// height × width × 3 bytes.
    public var bytes: [UInt8]

    /// Wraps `bytes`; the count must be height × width × 3.
    public init(height: Int, width: Int, bytes: [UInt8]) {
        precondition(height >= 0 && width >= 0 && bytes.count == height * width * 3,
                     "\(bytes.count) bytes for a \(height)×\(width) RGB image")
        self.height = height
        self.width = width
        self.bytes = bytes
    }

    /// The image padded to a square by centred edge replication — side = max(height, width),
    /// (side − width)/2 columns on the left and (side − height)/2 rows on top, the rest
    /// opposite — then resized to `size` × `size` as Pillow's `resize((size, size),
    /// Image.BICUBIC)` does, without building the padded square (`paddedSquareBicubicResize`).
    /// `scratch` is the resize's working memory; pass the same array frame after frame to reuse it.
    public func squareResized(to size: Int, scratch: inout [UInt8]) -> RGBImage {
        withView { $0.squareResized(to: size, scratch: &scratch) }
    }

    /// Calls `body` with a view of the image's bytes, valid only during the call.
    public func withView<R, E: Error>(_ body: (RGBImageView) throws(E) -> R) throws(E) -> R {
        let (h, w) = (height, width)
        return try bytes.withUnsafeBufferPointer { (b) throws(E) -> R in try body(RGBImageView(height: h, width: w, bytes: b)) }
    }

    /// The image resized as Pillow's `resize((width, height), Image.BICUBIC)` does (antialiased).
    public func resized(height outHeight: Int, width outWidth: Int) -> RGBImage {
        RGBImage(height: outHeight, width: outWidth,
                 bytes: bicubicResize(bytes, height: height, width: width, channels: 3,
                                      outHeight: outHeight, outWidth: outWidth))
    }
}

/// An 8-bit RGB image (`RGBImage`'s layout) in memory its owner lends for the length of a
/// call: an `RGBImage`'s array, or the colour part of a received frame message read where it
/// arrived (no copy at the sensor's resolution). The view does not keep its memory alive:
/// use it only inside the call that made it.
public struct RGBImageView {
    public let height: Int
    public let width: Int
    /// height × width × 3 bytes, row-major and interleaved.
    public let bytes: UnsafeBufferPointer<UInt8>

    /// Views `bytes`; the count must be height × width × 3.
    public init(height: Int, width: Int, bytes: UnsafeBufferPointer<UInt8>) {
        precondition(height >= 0 && width >= 0 && bytes.count == height * width * 3,
                     "\(bytes.count) bytes for a \(height)×\(width) RGB image")
        (self.height, self.width, self.bytes) = (height, width, bytes)
    }

    /// `RGBImage.squareResized(to:scratch:)` of these pixels.
    public func squareResized(to size: Int, scratch: inout [UInt8]) -> RGBImage {
        RGBImage(height: size, width: size,
                 bytes: paddedSquareBicubicResize(bytes, height: height, width: width, channels: 3, outSize: size, scratch: &scratch))
    }
}
