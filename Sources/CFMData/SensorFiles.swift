import CFMTensor
import Foundation

/// A sensor's colour and geometry images read from files, in every layout the wire protocol
/// carries, through the same conversions as the wire decoder (`RGBFormat.rgbBytes`,
/// `SensorGeometry.points`). Files are told apart by content, not by name:
///
/// - colour: a PNG (any colour type; 16-bit keeps the high byte, see `PNGFile.readRGB`) or an
///   8-bit TIFF of 1 (grey), 3 (RGB) or 4 (RGBA) channels. Both formats store RGB order.
/// - geometry: a 3-channel float32 TIFF (XYZ), a 1-channel float32 TIFF (depth in the frame's
///   unit) or a 16-bit grey PNG or TIFF (depth counts of `DepthCamera.depthScale` metres); a
///   depth image needs the camera's intrinsics. NaN, infinite and zero depth are holes.
public enum SensorFiles {
    /// Reads a colour image file as RGB.
    public static func readColour(_ url: URL) throws(ImageFileError) -> RGBImage {
        guard try isTIFF(url) else { return try PNGFile.readRGB(url) }
        let expected = "8-bit colour: 1 (grey), 3 (RGB) or 4 (RGBA) channels"
        let raster = try TIFFFile.read(url, expected: expected)
        let format: RGBFormat? = switch (raster.channels, raster.interpretation) {
        case (1, .grey): .mono8
        case (3, .rgb): .rgb8
        case (4, .rgb): .rgba8
        default: nil
        }
        guard let format, case let .uint8(bytes) = raster.samples else {
            let photometric = raster.interpretation == .other && raster.samples.kind == .uint8 ? " (neither grey nor RGB)" : ""
            throw .unexpectedFormat(file: url.path, found: raster.sampleDescription + photometric, expected: expected)
        }
        return RGBImage(height: raster.height, width: raster.width,
                        bytes: bytes.withUnsafeBytes { format.rgbBytes($0, pixels: raster.height * raster.width) })
    }

    /// Reads a geometry image file as an organized cloud [H, W, 3] and the layout it had; its
    /// unit is the frame's for float files and metres for 16-bit depth
    /// (`XYZFormat.cloudUnit`). `camera` back-projects a depth image and is ignored for XYZ.
    public static func readGeometry(_ url: URL, camera: DepthCamera?) throws(ImageFileError) -> (cloud: Tensor, format: XYZFormat) {
        let expected = "3 float32 channels (XYZ), 1 float32 channel (depth) or 1 channel of 16-bit depth"
        let format: XYZFormat, height: Int, width: Int, littleEndian: [UInt8]
        if try isTIFF(url) {
            let raster = try TIFFFile.read(url, expected: expected)
            (height, width) = (raster.height, raster.width)
            switch (raster.channels, raster.samples) {
            case let (3, .float32(values)):
                format = .xyz
                littleEndian = bytes(values.map(\.bitPattern.littleEndian))
            case let (1, .float32(values)):
                format = .depthF32
                littleEndian = bytes(values.map(\.bitPattern.littleEndian))
            case let (1, .uint16(counts)):
                format = .depthU16
                littleEndian = bytes(counts.map(\.littleEndian))
            default:
                throw .unexpectedFormat(file: url.path, found: raster.sampleDescription, expected: expected)
            }
        } else {
            let depth = try PNGFile.readDepth(url)
            (format, height, width) = (.depthU16, depth.height, depth.width)
            littleEndian = bytes(depth.counts.map(\.littleEndian))
        }
        if format.isDepth && camera == nil {
            throw .unexpectedFormat(file: url.path, found: "a depth image (\(format.rawValue))",
                                    expected: "its camera intrinsics fx, fy, cx, cy to back-project it")
        }
        let geometry = SensorGeometry(format: format, width: width, height: height, camera: camera)
        // Without a limit every finite point is kept (the detector bounds coordinates itself);
        // only a back-projection that overflows float64 is refused.
        let points = littleEndian.withUnsafeBytes { bytes in Result { () throws(SensorGeometry.FarPoint) in try geometry.points(bytes) } }
        switch points {
        case let .success(points): return (Tensor(shape: [height, width, 3], scalars: points), format)
        case let .failure(far):
            throw .unexpectedFormat(file: url.path, found: "pixel (row \(far.row), column \(far.column)) at \(far.distance)",
                                    expected: "finite coordinates")
        }
    }

    /// A colour file and a geometry file of one frame, read and checked to have one size.
    public static func readFrame(rgb: URL, xyz: URL, camera: DepthCamera?) throws(ImageFileError)
        -> (rgb: RGBImage, cloud: Tensor, format: XYZFormat) {
        let image = try readColour(rgb)
        let (cloud, format) = try readGeometry(xyz, camera: camera)
        guard cloud.shape[0] == image.height, cloud.shape[1] == image.width else {
            throw .unexpectedFormat(file: xyz.path, found: "\(cloud.shape[1])×\(cloud.shape[0]) pixels",
                                    expected: "the size of \(rgb.lastPathComponent), \(image.width)×\(image.height)")
        }
        return (image, cloud, format)
    }

    /// Whether the file starts with a TIFF byte-order mark ("II*\0" or "MM\0*"); any other
    /// file is read as PNG (which names what it found when it is not one).
    private static func isTIFF(_ url: URL) throws(ImageFileError) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: url.path) else { throw .unreadable(file: url.path, reason: "no such file") }
        defer { try? handle.close() }
        let head = [UInt8]((try? handle.read(upToCount: 4)) ?? Data())
        return head == [0x49, 0x49, 0x2A, 0x00] || head == [0x4D, 0x4D, 0x00, 0x2A]
    }

    private static func bytes<T>(_ values: [T]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }
}
