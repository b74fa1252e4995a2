import CFMTensor
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
        var rgb: [UInt8] = []
        rgbBytes(bytes, pixels: pixels, into: &rgb)
        return rgb
    }

    /// `rgbBytes(_:pixels:)` written into `rgb`, reallocated only when its count is not
    /// pixels × 3 (pass the same array frame after frame to reuse it): a copy for `rgb8`, one
    /// parallel pass otherwise.
    public func rgbBytes(_ bytes: UnsafeRawBufferPointer, pixels: Int, into rgb: inout [UInt8]) {
        precondition(bytes.count >= pixels * bytesPerPixel, "\(bytes.count) bytes for \(pixels) pixels of \(bytesPerPixel) bytes")
        if rgb.count != 3 * pixels { rgb = [UInt8](unsafeUninitializedCapacity: 3 * pixels) { _, count in count = 3 * pixels } }
        rgb.withUnsafeMutableBufferPointer { out in
            guard pixels > 0 else { return }
            if self == .rgb8 {
                UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: bytes.baseAddress!, byteCount: 3 * pixels)
            } else {
                Self.gather(bytes, pixels: pixels, bytesPerPixel: bytesPerPixel, order: channelOrder, into: out.baseAddress!)
            }
        }
    }

    /// R, G, B taken from the bytes at `order` within each `bytesPerPixel`-byte pixel. Also
    /// the conversion of PNG grey + alpha (2 bytes per pixel, R = G = B = the grey byte).
    static func gather(_ bytes: UnsafeRawBufferPointer, pixels: Int, bytesPerPixel n: Int,
                       order: (red: Int, green: Int, blue: Int)) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: pixels * 3) { out, count in
            if pixels > 0 { gather(bytes, pixels: pixels, bytesPerPixel: n, order: order, into: out.baseAddress!) }
            count = pixels * 3
        }
    }

    /// `gather(_:pixels:bytesPerPixel:order:)` into `out` (pixels × 3 bytes), in parallel.
    static func gather(_ bytes: UnsafeRawBufferPointer, pixels: Int, bytesPerPixel n: Int,
                       order: (red: Int, green: Int, blue: Int), into out: UnsafeMutablePointer<UInt8>) {
        precondition(bytes.count >= pixels * n, "\(bytes.count) bytes for \(pixels) pixels of \(n) bytes")
        parallelChunks(pixels, minimumChunk: 1 << 16) { range in
            for p in range {
                out[3 * p] = bytes[n * p + order.red]
                out[3 * p + 1] = bytes[n * p + order.green]
                out[3 * p + 2] = bytes[n * p + order.blue]
            }
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
        var scalars: [Float] = []
        try points(bytes, limit: limit, into: &scalars)
        return scalars
    }

    /// `points(_:limit:)` written into `scalars`, which is reallocated only when its count is
    /// not height · width · 3 — pass the same array frame after frame and nothing at the
    /// sensor's resolution is allocated again. One pass that writes every value, in parallel
    /// bands of rows; the pixel reported is the first far one in row-major order, as a serial
    /// pass would find it. After a `FarPoint` the contents are unspecified.
    public func points(_ bytes: UnsafeRawBufferPointer, limit: Double = .infinity, into scalars: inout [Float]) throws(FarPoint) {
        let pixels = width * height
        precondition(bytes.count >= pixels * format.bytesPerPixel, "\(bytes.count) bytes for \(width)×\(height) \(format.rawValue)")
        if scalars.count != 3 * pixels {
            scalars = [Float](unsafeUninitializedCapacity: 3 * pixels) { _, count in count = 3 * pixels }
        }
        try scalars.withUnsafeMutableBufferPointer { (out) throws(FarPoint) in
            try convert(bytes, limit: limit, into: out.baseAddress!, inPlace: false)
        }
    }

    /// `points(_:limit:)` of an `xyz` image converted where it is: `bytes` (width × height × 12
    /// bytes at a 4-byte-aligned address — a received message's own buffer) become the
    /// [height · width · 3] Float32 values, returned as a view of the same memory. Holes are
    /// written as (0, 0, 0); on a little-endian machine every other value is already what the
    /// cloud holds and is only read. Checks, the pixel reported and the values are those of
    /// `points(_:limit:into:)`. After a `FarPoint` the contents are unspecified.
    public func points(convertingInPlace bytes: UnsafeMutableRawBufferPointer,
                       limit: Double = .infinity) throws(FarPoint) -> UnsafeMutableBufferPointer<Float> {
        let values = 3 * width * height
        precondition(format == .xyz, "\(format.rawValue) changes size when converted: it cannot be converted in place")
        precondition(bytes.count == 4 * values, "\(bytes.count) bytes for \(width)×\(height) \(format.rawValue)")
        guard values > 0 else { return UnsafeMutableBufferPointer(start: nil, count: 0) }
        precondition(Int(bitPattern: bytes.baseAddress!) % MemoryLayout<Float>.alignment == 0, "XYZ bytes not aligned for Float32")
        let out = bytes.baseAddress!.bindMemory(to: Float.self, capacity: values)
        try convert(UnsafeRawBufferPointer(bytes), limit: limit, into: out, inPlace: true)
        return UnsafeMutableBufferPointer(start: out, count: values)
    }

    /// The conversion of both `points` forms into `out` ([height · width · 3] values; `bytes`
    /// itself when `inPlace`, where only holes are written). One pass in parallel bands of
    /// rows; the pixel reported is the first far one in row-major order, as a serial pass would
    /// find it.
    private func convert(_ bytes: UnsafeRawBufferPointer, limit: Double, into out: UnsafeMutablePointer<Float>,
                         inPlace: Bool) throws(FarPoint) {
        let w = width
        // Per worker: the first far pixel of its rows and its largest coordinate.
        var outliers = [(pixel: Int, value: Double)?](repeating: nil, count: cpuCount)
        let (format, camera) = (format, camera)
        outliers.withUnsafeMutableBufferPointer { outliers in
            parallelWorkers(height, minimumChunk: max(1, (1 << 16) / max(1, w))) { worker, rows in
                let pixelRange = (rows.lowerBound * w)..<(rows.upperBound * w)
                outliers[worker] = Self.convert(bytes, format: format, camera: camera, width: w, pixels: pixelRange,
                                                limit: limit, into: out, inPlace: inPlace)
            }
        }
        if let (p, value) = outliers.lazy.compactMap({ $0 }).min(by: { $0.pixel < $1.pixel }) {
            throw FarPoint(row: p / w, column: p % w, distance: value)
        }
    }

    /// The conversion over pixels `range` (row-major indices): returns the first pixel with a
    /// coordinate beyond `limit` (the pixels before it are written). `inPlace`: `out` is
    /// `bytes` (`xyz` only; each pixel is read before it is written).
    private static func convert(_ bytes: UnsafeRawBufferPointer, format: XYZFormat, camera: DepthCamera?, width w: Int,
                                pixels range: Range<Int>, limit: Double, into out: UnsafeMutablePointer<Float>,
                                inPlace: Bool) -> (pixel: Int, value: Double)? {
        func float(_ i: Int) -> Float { Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        switch format {
        case .xyz:
            /// Pixel `p`: a hole becomes (0, 0, 0); a point beyond `limit` is returned.
            func convert(_ p: Int) -> (pixel: Int, value: Double)? {
                var (x, y, z) = (float(3 * p), float(3 * p + 1), float(3 * p + 2))
                if x.isFinite && y.isFinite && z.isFinite {
                    let far = max(abs(x), abs(y), abs(z))
                    if Double(far) > limit { return (p, Double(far)) }
                } else {
                    (x, y, z) = (0, 0, 0)
                }
                (out[3 * p], out[3 * p + 1], out[3 * p + 2]) = (x, y, z)
                return nil
            }
            var blocks = range.lowerBound
            #if _endian(little)
            // Four pixels (12 values) at a time: finite and within the limit, they are copied as they
            // are (in place: left as they are); a block with a hole or a far value goes pixel by pixel. The test is on the bit
            // patterns: without the sign bit, finite Floats order as their patterns do, above them
            // infinity and NaN, so |v| ≤ the largest Float within `limit` (at most the largest
            // finite one) is one integer comparison.
            blocks += (range.count / 4) * 4
            var largest = Float(limit)
            if Double(largest) > limit { largest = largest.nextDown }
            let bound = SIMD4<Int32>(repeating: min(Int32(bitPattern: largest.bitPattern), Int32(bitPattern: Float.greatestFiniteMagnitude.bitPattern)))
            let magnitude = SIMD4<Int32>(repeating: 0x7FFF_FFFF)
            func near(_ v: SIMD4<Float>) -> Bool { all(unsafeBitCast(v, to: SIMD4<Int32>.self) & magnitude .<= bound) }
            for p in stride(from: range.lowerBound, to: blocks, by: 4) {
                let at = 12 * p
                let (a, b, c) = (bytes.loadUnaligned(fromByteOffset: at, as: SIMD4<Float>.self),
                                 bytes.loadUnaligned(fromByteOffset: at + 16, as: SIMD4<Float>.self),
                                 bytes.loadUnaligned(fromByteOffset: at + 32, as: SIMD4<Float>.self))
                guard near(a) && near(b) && near(c) else {
                    for q in p..<(p + 4) { if let far = convert(q) { return far } }
                    continue
                }
                if inPlace { continue }
                let o = UnsafeMutableRawPointer(out + 3 * p)
                o.storeBytes(of: a, as: SIMD4<Float>.self)
                o.storeBytes(of: b, toByteOffset: 16, as: SIMD4<Float>.self)
                o.storeBytes(of: c, toByteOffset: 32, as: SIMD4<Float>.self)
            }
            #endif
            for p in blocks..<range.upperBound { if let far = convert(p) { return far } }
        case .depthF32, .depthU16:
            let k = camera!.intrinsics, scale = camera!.depthScale
            for p in range {
                let z = format == .depthF32
                    ? Double(float(p))
                    : Double(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * p, as: UInt16.self))) * scale
                guard z.isFinite && z != 0 else {
                    (out[3 * p], out[3 * p + 1], out[3 * p + 2]) = (0, 0, 0)
                    continue
                }
                let (u, v) = (Double(p % w), Double(p / w))
                let x = (u - k.cx) * z / k.fx, y = (v - k.cy) * z / k.fy
                let far = max(abs(x), abs(y), abs(z))
                if !(far <= limit) { return (p, far) }
                (out[3 * p], out[3 * p + 1], out[3 * p + 2]) = (Float(x), Float(y), Float(z))
            }
        }
        return nil
    }
}
