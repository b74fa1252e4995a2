import CLibPNG
import Foundation

/// PNG reading and writing through libpng's simplified API, which reports failures through
/// return codes and `png_image.message` (no longjmp reaches Swift).
///
/// Reading follows Pillow (`Image.open(f).convert("RGB")` / `.convert("L")`), which the
/// reference implementation uses: palettes are expanded, alpha is dropped without compositing,
/// grey is replicated to RGB, RGB becomes grey as L = (19595 R + 38470 G + 7471 B + 2¹⁵) >> 16,
/// 16-bit colour or grey+alpha samples keep their high byte and 16-bit grey is clipped to 255.
/// Two corner cases differ from Pillow because libpng applies them: a gAMA/iCCP chunk that is
/// not sRGB is gamma-corrected, and 16-bit images with alpha arrive premultiplied by alpha.
public enum PNGFile {
    /// Reads an 8-bit RGB image (any PNG colour type or bit depth, converted as described
    /// above): grey, RGB and RGBA pixels go through `RGBFormat`'s conversion (`mono8`, `rgb8`,
    /// `rgba8`), the sensor layouts' one colour conversion.
    public static func readRGB(_ url: URL) throws(ImageFileError) -> RGBImage {
        let png = try decode(url)
        let samples = png.eightBit
        let rgb = samples.withUnsafeBytes { bytes in
            switch png.channels {
            case 1: RGBFormat.mono8.rgbBytes(bytes, pixels: png.pixelCount)
            case 2: RGBFormat.gather(bytes, pixels: png.pixelCount, bytesPerPixel: 2, order: (0, 0, 0))
            case 3: RGBFormat.rgb8.rgbBytes(bytes, pixels: png.pixelCount)
            default: RGBFormat.rgba8.rgbBytes(bytes, pixels: png.pixelCount)
            }
        }
        return RGBImage(height: png.height, width: png.width, bytes: rgb)
    }

    /// Reads a 16-bit grey PNG (a depth image) as its counts, row-major. libpng changes the
    /// samples only when the file declares a gamma (gAMA, sRGB, iCCP), which depth writers do
    /// not. Any other layout is refused naming its channels and bit depth.
    public static func readDepth(_ url: URL) throws(ImageFileError) -> (height: Int, width: Int, counts: [UInt16]) {
        let png = try decode(url)
        guard png.channels == 1, case let .sixteen(counts) = png.samples else {
            throw .unexpectedFormat(file: url.path, found: png.sampleDescription, expected: "1 channel of 16-bit depth")
        }
        return (png.height, png.width, counts)
    }

    /// Reads an 8-bit grey image (ground-truth masks); colour files are converted to luma.
    public static func readGray(_ url: URL) throws(ImageFileError) -> GrayImage {
        let png = try decode(url)
        let samples = png.eightBit
        let grey = (0..<png.pixelCount).map { p -> UInt8 in
            let s = p * png.channels
            guard png.channels >= 3 else { return samples[s] }
            let (r, g, b) = (UInt32(samples[s]), UInt32(samples[s + 1]), UInt32(samples[s + 2]))
            return UInt8((19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16)
        }
        return GrayImage(height: png.height, width: png.width, bytes: grey)
    }

    /// How hard `write` compresses.
    public enum Compression: Sendable {
        /// libpng's defaults: the smallest files.
        case compact
        /// About 3× faster to write and about 25 % larger (files that can be regenerated).
        case fast
    }

    /// Writes an 8-bit RGB PNG. Equal images give byte-identical files.
    public static func write(_ image: RGBImage, to url: URL, compression: Compression = .compact) throws(ImageFileError) {
        try encode(image.bytes, height: image.height, width: image.width, format: UInt32(PNG_FORMAT_RGB),
                   compression: compression, to: url)
    }

    /// Writes an 8-bit grey PNG. Equal images give byte-identical files.
    public static func write(_ image: GrayImage, to url: URL, compression: Compression = .compact) throws(ImageFileError) {
        try encode(image.bytes, height: image.height, width: image.width, format: UInt32(PNG_FORMAT_GRAY),
                   compression: compression, to: url)
    }

    /// Writes a 16-bit grey PNG (a depth image of counts). Equal images give byte-identical files.
    public static func writeDepth(_ counts: [UInt16], height: Int, width: Int, to url: URL) throws(ImageFileError) {
        precondition(counts.count == height * width, "\(counts.count) counts for a \(width)×\(height) depth image")
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        (image.width, image.height) = (UInt32(width), UInt32(height))
        image.format = UInt32(PNG_FORMAT_LINEAR_Y)
        defer { png_image_free(&image) }
        guard png_image_write_to_file(&image, url.path, 0, counts, 0, nil) != 0 else {
            throw .unwritable(file: url.path, reason: message(of: image))
        }
    }

    /// A file's pixels in its own layout (grey, grey+alpha, RGB or RGBA), 8- or 16-bit.
    private struct DecodedPNG {
        enum Samples { case eight([UInt8]), sixteen([UInt16]) }
        let height: Int, width: Int, channels: Int
        let samples: Samples
        var pixelCount: Int { height * width }

        /// 8-bit samples as Pillow makes them: 16-bit grey is clipped ("I" → "L"/"RGB"), every
        /// other 16-bit layout keeps its high byte.
        var eightBit: [UInt8] {
            switch samples {
            case let .eight(bytes): bytes
            case let .sixteen(wide): wide.map { channels == 1 ? UInt8(min($0, 255)) : UInt8($0 >> 8) }
            }
        }

        /// E.g. "3 channels of 8-bit", for errors.
        var sampleDescription: String {
            let bits = if case .sixteen = samples { 16 } else { 8 }
            return "\(channels) channel\(channels == 1 ? "" : "s") of \(bits)-bit"
        }
    }

    private static func decode(_ url: URL) throws(ImageFileError) -> DecodedPNG {
        let path = url.path
        guard FileManager.default.fileExists(atPath: path) else { throw .unreadable(file: path, reason: "no such file") }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        defer { png_image_free(&image) }
        guard png_image_begin_read_from_file(&image, path) != 0 else {
            throw .corrupt(file: path, reason: message(of: image))
        }
        let alpha = UInt32(PNG_FORMAT_FLAG_ALPHA), color = UInt32(PNG_FORMAT_FLAG_COLOR)
        let sixteenBit = image.format & UInt32(PNG_FORMAT_FLAG_LINEAR) != 0
        // The file's own channels (palettes expand to RGB/RGBA); 16-bit files are read as linear
        // 16-bit, which libpng leaves unchanged when the file carries no gamma information.
        image.format = (image.format & (alpha | color)) | (sixteenBit ? UInt32(PNG_FORMAT_FLAG_LINEAR) : 0)
        let channels = (image.format & color != 0 ? 3 : 1) + (image.format & alpha != 0 ? 1 : 0)
        let height = Int(image.height), width = Int(image.width)
        guard height * width <= maximumImagePixels else {
            throw .corrupt(file: path, reason: "implausible size \(width)×\(height)")
        }
        let count = height * width * channels
        if sixteenBit {
            var wide = [UInt16](repeating: 0, count: count)
            guard png_image_finish_read(&image, nil, &wide, 0, nil) != 0 else {
                throw .corrupt(file: path, reason: message(of: image))
            }
            return DecodedPNG(height: height, width: width, channels: channels, samples: .sixteen(wide))
        }
        var samples = [UInt8](repeating: 0, count: count)
        guard png_image_finish_read(&image, nil, &samples, 0, nil) != 0 else {
            throw .corrupt(file: path, reason: message(of: image))
        }
        return DecodedPNG(height: height, width: width, channels: channels, samples: .eight(samples))
    }

    private static func encode(_ bytes: [UInt8], height: Int, width: Int, format: UInt32, compression: Compression,
                               to url: URL) throws(ImageFileError) {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = format
        if compression == .fast { image.flags = UInt32(PNG_IMAGE_FLAG_FAST) }
        defer { png_image_free(&image) }
        guard png_image_write_to_file(&image, url.path, 0, bytes, 0, nil) != 0 else {
            throw .unwritable(file: url.path, reason: message(of: image))
        }
    }

    /// libpng's last error or warning text.
    private static func message(of image: png_image) -> String {
        let text = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return text.isEmpty ? "libpng failed without a message" : text
    }
}
