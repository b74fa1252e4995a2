import Foundation

// The pixel layouts a sensor delivers and their one conversion each to what the detector
// takes (8-bit RGB, an organized XYZ cloud). The wire decoder (`cfm serve`) and the file
// readers (`SensorFiles`: `cfm infer`, datasets, `cfm replay`) call the same functions, so a
// part gives the same input however it arrives.

/// Pixel layout of a colour image: bytes per pixel and channel order. Every layout converts
/// to the same RGB image as the equivalent `rgb8` (alpha dropped, grey replicated).
public enum RGBFormat: String, Codable, Sendable, CaseIterable {
    case rgb8, bgr8, rgba8, bgra8, mono8

    public var bytesPerPixel: Int {
        switch self {
        case .rgb8, .bgr8: 3
        case .rgba8, .bgra8: 4
        case .mono8: 1
        }
    }

    /// The byte within a pixel that holds R, G and B.
    var channelOrder: (red: Int, green: Int, blue: Int) {
        switch self {
        case .rgb8, .rgba8: (0, 1, 2)
        case .bgr8, .bgra8: (2, 1, 0)
        case .mono8: (0, 0, 0)
        }
    }

    /// `pixels` pixels in this layout (`bytes` holds pixels × `bytesPerPixel`) → RGB bytes,
    /// pixels × 3.
    public func rgbBytes(_ bytes: UnsafeRawBufferPointer, pixels: Int) -> [UInt8] {
        if self == .rgb8 { return Array(bytes.prefix(pixels * 3)) }
        return Self.gather(bytes, pixels: pixels, bytesPerPixel: bytesPerPixel, order: channelOrder)
    }

    /// R, G, B taken from the bytes at `order` within each `bytesPerPixel`-byte pixel. Also
    /// the conversion of PNG grey + alpha (2 bytes per pixel, R = G = B = the grey byte).
    static func gather(_ bytes: UnsafeRawBufferPointer, pixels: Int, bytesPerPixel n: Int,
                       order: (red: Int, green: Int, blue: Int)) -> [UInt8] {
        precondition(bytes.count >= pixels * n, "\(bytes.count) bytes for \(pixels) pixels of \(n) bytes")
        return [UInt8](unsafeUninitializedCapacity: pixels * 3) { out, count in
            for p in 0..<pixels {
                out[3 * p] = bytes[n * p + order.red]
                out[3 * p + 1] = bytes[n * p + order.green]
                out[3 * p + 2] = bytes[n * p + order.blue]
            }
            count = pixels * 3
        }
    }
}

/// Layout of a geometry image.
public enum XYZFormat: String, Codable, Sendable, CaseIterable {
    /// X, Y, Z float32 little-endian per pixel, in the frame's unit.
    case xyz = "xyz_f32le"
    /// Z float32 little-endian per pixel, in the frame's unit; back-projected with intrinsics.
    case depthF32 = "depth_f32le"
    /// Z uint16 little-endian per pixel, `depthScale` metres per count; back-projected with intrinsics.
    case depthU16 = "depth_u16le"

    public var bytesPerPixel: Int {
        switch self {
        case .xyz: 12
        case .depthF32: 4
        case .depthU16: 2
        }
    }

    public var isDepth: Bool { self != .xyz }
}

/// Pinhole intrinsics of a depth image, in pixels: a pixel at column u, row v with depth z
/// is the point ((u − cx)·z/fx, (v − cy)·z/fy, z) (the OpenCV / RealSense convention).
public struct Intrinsics: Codable, Sendable, Equatable {
    public var fx: Double, fy: Double, cx: Double, cy: Double

    public init(fx: Double, fy: Double, cx: Double, cy: Double) { (self.fx, self.fy, self.cx, self.cy) = (fx, fy, cx, cy) }

    /// Focal lengths finite and positive, principal point finite.
    public var isValid: Bool { fx.isFinite && fy.isFinite && cx.isFinite && cy.isFinite && fx > 0 && fy > 0 }
}

/// What back-projecting a depth image needs besides its pixels.
public struct DepthCamera: Sendable, Equatable {
    public var intrinsics: Intrinsics
    /// Metres per count of a 16-bit depth image.
    public var depthScale: Double

    /// The usual 16-bit depth unit: one count is a millimetre.
    public static let defaultDepthScale = 0.001

    public init(intrinsics: Intrinsics, depthScale: Double = DepthCamera.defaultDepthScale) {
        (self.intrinsics, self.depthScale) = (intrinsics, depthScale)
    }
}

/// A geometry image's layout and size: how its bytes become an organized cloud.
public struct SensorGeometry: Sendable, Equatable {
    public var format: XYZFormat
    public var width: Int, height: Int
    /// Required by the depth formats, ignored by `xyz`.
    public var camera: DepthCamera?

    public init(format: XYZFormat, width: Int, height: Int, camera: DepthCamera? = nil) {
        precondition(!format.isDepth || camera != nil, "\(format.rawValue) needs intrinsics")
        (self.format, self.width, self.height, self.camera) = (format, width, height, camera)
    }

    /// The first pixel with a coordinate beyond the limit (`points(_:limit:)`).
    public struct FarPoint: Error, Equatable {
        public var row: Int, column: Int
        /// Largest |X|, |Y| or |Z| of that pixel, in the cloud's unit.
        public var distance: Double
    }

    /// The geometry bytes (width × height × `format.bytesPerPixel`, little-endian) → XYZ
    /// [height · width · 3] in the values' unit (metres for `depthU16`). Holes — a NaN or
    /// infinite coordinate, a zero, NaN or infinite depth — become (0, 0, 0), the point-less
    /// pixel. Depth is back-projected in double precision, X = (u − cx)·z/fx, Y = (v − cy)·z/fy
    /// with u the column and v the row, then rounded to float32. A finite coordinate farther
    /// than `limit` (in the cloud's unit) stops the conversion with the pixel.
    public func points(_ bytes: UnsafeRawBufferPointer, limit: Double = .infinity) throws(FarPoint) -> [Float] {
        let (w, pixels) = (width, width * height)
        precondition(bytes.count >= pixels * format.bytesPerPixel, "\(bytes.count) bytes for \(width)×\(height) \(format.rawValue)")
        func float(_ i: Int) -> Float { Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        var scalars = [Float](repeating: 0, count: pixels * 3)
        var outlier: (pixel: Int, value: Double)?
        scalars.withUnsafeMutableBufferPointer { out in
            switch format {
            case .xyz:
                for p in 0..<pixels {
                    let (x, y, z) = (float(3 * p), float(3 * p + 1), float(3 * p + 2))
                    guard x.isFinite && y.isFinite && z.isFinite else { continue }
                    let far = max(abs(x), abs(y), abs(z))
                    if Double(far) > limit { outlier = (p, Double(far)); return }
                    (out[3 * p], out[3 * p + 1], out[3 * p + 2]) = (x, y, z)
                }
            case .depthF32, .depthU16:
                let k = camera!.intrinsics, scale = camera!.depthScale
                for p in 0..<pixels {
                    let z = format == .depthF32
                        ? Double(float(p))
                        : Double(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * p, as: UInt16.self))) * scale
                    guard z.isFinite && z != 0 else { continue }
                    let (u, v) = (Double(p % w), Double(p / w))
                    let x = (u - k.cx) * z / k.fx, y = (v - k.cy) * z / k.fy
                    let far = max(abs(x), abs(y), abs(z))
                    if !(far <= limit) { outlier = (p, far); return }
                    (out[3 * p], out[3 * p + 1], out[3 * p + 2]) = (Float(x), Float(y), Float(z))
                }
            }
        }
        if let (p, value) = outlier { throw FarPoint(row: p / w, column: p % w, distance: value) }
        return scalars
    }
}
