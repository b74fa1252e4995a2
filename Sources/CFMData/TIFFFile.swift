import CFMTensor
import CLibTIFF
import Foundation

/// TIFF reading and writing through libtiff: float32 organized point clouds [H, W, 3] as
/// MVTec 3D-AD stores them (metres, camera frame) and single-channel maps [H, W]; and, as
/// `TIFFRaster`, 8-bit colour or grey, 16-bit depth and float32 images of 1, 3 or 4 channels.
///
/// Reading accepts strips or tiles, either byte order, interleaved or separate sample planes and
/// every compression (and predictor) libtiff decodes. Writing defaults to MVTec's plain layout
/// (little-endian, uncompressed, interleaved strips); `Layout` selects the others.
public enum TIFFFile {
    /// How `write` lays the samples out in the file.
    public struct Layout: Sendable, Equatable {
        public enum ByteOrder: Sendable { case littleEndian, bigEndian }
        public enum Compression: Sendable {
            case none, lzw, deflate, packBits
            var tag: Int32 {
                switch self {
                case .none: COMPRESSION_NONE
                case .lzw: COMPRESSION_LZW
                case .deflate: COMPRESSION_ADOBE_DEFLATE
                case .packBits: COMPRESSION_PACKBITS
                }
            }
        }

        public var byteOrder: ByteOrder
        public var compression: Compression
        /// The floating-point predictor (TIFF predictor 3); only with a compression and little-endian
        /// byte order (libtiff 4.5 writes it byte-swapped into big-endian files; it reads them fine).
        public var floatingPointPredictor: Bool
        /// Square tiles of this many pixels (a multiple of 16) instead of strips.
        public var tileSize: Int?
        /// Each sample in its own plane instead of interleaved.
        public var separatePlanes: Bool

        public init(byteOrder: ByteOrder = .littleEndian, compression: Compression = .none,
                    floatingPointPredictor: Bool = false, tileSize: Int? = nil, separatePlanes: Bool = false) {
            self.byteOrder = byteOrder
            self.compression = compression
            self.floatingPointPredictor = floatingPointPredictor
            self.tileSize = tileSize
            self.separatePlanes = separatePlanes
        }

        /// Little-endian, uncompressed, interleaved strips.
        public static let plain = Layout()
    }

    /// Reads a 3-channel float32 point cloud as a tensor [height, width, 3].
    public static func readPointCloud(_ url: URL) throws(ImageFileError) -> Tensor {
        try readFloat(url, channels: 3)
    }

    /// Reads a single-channel float32 map as a tensor [height, width].
    public static func readMap(_ url: URL) throws(ImageFileError) -> Tensor {
        let map = try readFloat(url, channels: 1)
        return map.reshaped(Array(map.shape.prefix(2)))
    }

    /// Writes a float32 tensor [height, width] or [height, width, channels] (channels 1 or 3).
    /// Equal tensors and layouts give byte-identical files.
    public static func write(_ tensor: Tensor, to url: URL, layout: Layout = .plain) throws(ImageFileError) {
        guard (2...3).contains(tensor.shape.count), tensor.shape.count == 2 || [1, 3].contains(tensor.shape[2]) else {
            throw .unwritable(file: url.path, reason: "tensor of shape \(tensor.shape) is neither [H, W] nor [H, W, 1 or 3]")
        }
        try write(TIFFRaster(height: tensor.shape[0], width: tensor.shape[1], channels: tensor.shape.count == 3 ? tensor.shape[2] : 1,
                             samples: .float32(tensor.scalars)), to: url, layout: layout)
    }

    /// Writes a raster: 1 channel as grey (min-is-black), 3 as RGB, 4 as RGB + unassociated
    /// alpha. Equal rasters and layouts give byte-identical files.
    public static func write(_ raster: TIFFRaster, to url: URL, layout: Layout = .plain) throws(ImageFileError) {
        let path = url.path
        let (height, width, samples) = (raster.height, raster.width, raster.channels)
        guard [1, 3, 4].contains(samples), height > 0, width > 0, raster.samples.count == height * width * samples else {
            throw .unwritable(file: path, reason: "\(raster.samples.count) samples for a \(width)×\(height) image of \(samples) channels (1, 3 or 4)")
        }
        if let tile = layout.tileSize, tile <= 0 || tile % 16 != 0 {
            throw .unwritable(file: path, reason: "tile size \(tile) is not a positive multiple of 16")
        }
        if layout.floatingPointPredictor && (layout.byteOrder == .bigEndian || layout.compression == .none || raster.samples.kind != .float32) {
            throw .unwritable(file: path, reason: "the floating-point predictor needs float32 samples, a compression and little-endian byte order")
        }
        let kind = raster.samples.kind
        let tiff = try TIFFHandle(path: path, mode: layout.byteOrder == .bigEndian ? "wb" : "wl")
        try tiff.set(TIFFTAG_IMAGEWIDTH, UInt32(width))
        try tiff.set(TIFFTAG_IMAGELENGTH, UInt32(height))
        try tiff.set(TIFFTAG_SAMPLESPERPIXEL, Int32(samples))
        try tiff.set(TIFFTAG_BITSPERSAMPLE, Int32(8 * kind.bytes))
        try tiff.set(TIFFTAG_SAMPLEFORMAT, Int32(kind == .float32 ? SAMPLEFORMAT_IEEEFP : SAMPLEFORMAT_UINT))
        try tiff.set(TIFFTAG_PHOTOMETRIC, Int32(samples == 1 ? PHOTOMETRIC_MINISBLACK : PHOTOMETRIC_RGB))
        if samples == 4 { try tiff.setUnassociatedAlpha() }
        try tiff.set(TIFFTAG_PLANARCONFIG, Int32(layout.separatePlanes ? PLANARCONFIG_SEPARATE : PLANARCONFIG_CONTIG))
        try tiff.set(TIFFTAG_COMPRESSION, layout.compression.tag)
        if layout.floatingPointPredictor { try tiff.set(TIFFTAG_PREDICTOR, Int32(PREDICTOR_FLOATINGPOINT)) }
        let blocks: TIFFBlockLayout
        if let tile = layout.tileSize {
            try tiff.set(TIFFTAG_TILEWIDTH, UInt32(tile))
            try tiff.set(TIFFTAG_TILELENGTH, UInt32(tile))
            blocks = TIFFBlockLayout(height: height, width: width, samples: samples, bytesPerSample: kind.bytes, tiled: true,
                                     blockWidth: tile, blockHeight: tile, separatePlanes: layout.separatePlanes)
        } else {
            let rows = min(Int(tiff.defaultRowsPerStrip), height)
            try tiff.set(TIFFTAG_ROWSPERSTRIP, UInt32(rows))
            blocks = TIFFBlockLayout(height: height, width: width, samples: samples, bytesPerSample: kind.bytes, tiled: false,
                                     blockWidth: width, blockHeight: rows, separatePlanes: layout.separatePlanes)
        }
        var buffer = [UInt8](repeating: 0, count: blocks.blockBytes)
        try raster.samples.withUnsafeBytes { (image) throws(ImageFileError) in
            for block in blocks.blocks {
                try buffer.withUnsafeMutableBufferPointer { (scratch) throws(ImageFileError) in
                    scratch.update(repeating: 0)
                    let scratch = UnsafeMutableRawBufferPointer(scratch)
                    blocks.gather(block, from: image.baseAddress!, into: scratch.baseAddress!)
                    try tiff.writeBlock(block.index, tiled: blocks.tiled, bytes: UnsafeMutableRawBufferPointer(
                        rebasing: scratch[0..<blocks.decodedBytes(of: block)]))
                }
            }
        }
        try tiff.finishWriting()
    }

    /// Reads the first image of a float32 TIFF with `channels` samples per pixel → [H, W, channels].
    static func readFloat(_ url: URL, channels: Int) throws(ImageFileError) -> Tensor {
        let expected = channels == 1 ? "1 float32 channel" : "\(channels) float32 channels"
        let raster = try read(url, expected: expected)
        guard raster.channels == channels, case let .float32(scalars) = raster.samples else {
            throw .unexpectedFormat(file: url.path, found: raster.sampleDescription, expected: expected)
        }
        return Tensor(shape: [raster.height, raster.width, channels], scalars: scalars)
    }

    /// Reads the first image of a TIFF of 8- or 16-bit unsigned or 32-bit float samples, any
    /// number of channels, as stored (photometric interpretation not applied); `expected`
    /// names what the caller needs, for the error about any other sample type.
    public static func read(_ url: URL, expected: String) throws(ImageFileError) -> TIFFRaster {
        let path = url.path
        guard FileManager.default.fileExists(atPath: path) else { throw .unreadable(file: path, reason: "no such file") }
        let tiff = try TIFFHandle(path: path, mode: "r")
        guard let width = tiff.field(TIFFTAG_IMAGEWIDTH, as: UInt32.self).map(Int.init),
              let height = tiff.field(TIFFTAG_IMAGELENGTH, as: UInt32.self).map(Int.init),
              let samples = tiff.field(TIFFTAG_SAMPLESPERPIXEL, as: UInt16.self).map(Int.init),
              let bits = tiff.field(TIFFTAG_BITSPERSAMPLE, as: UInt16.self),
              let format = tiff.field(TIFFTAG_SAMPLEFORMAT, as: UInt16.self),
              let planar = tiff.field(TIFFTAG_PLANARCONFIG, as: UInt16.self)
        else { throw .corrupt(file: path, reason: tiff.reason("missing image size or sample description")) }
        let kind: TIFFRaster.SampleKind? = switch (Int32(format), bits) {
        case (SAMPLEFORMAT_UINT, 8): .uint8
        case (SAMPLEFORMAT_UINT, 16): .uint16
        case (SAMPLEFORMAT_IEEEFP, 32): .float32
        default: nil
        }
        guard let kind, samples > 0 else {
            throw .unexpectedFormat(file: path, found: TIFFRaster.describe(channels: samples, bits: Int(bits), format: format), expected: expected)
        }
        let photometric = tiff.field(TIFFTAG_PHOTOMETRIC, as: UInt16.self).map(Int32.init)
        let interpretation: TIFFRaster.Interpretation = switch photometric {
        case PHOTOMETRIC_MINISBLACK?: .grey
        case PHOTOMETRIC_RGB?: .rgb
        default: .other
        }
        let tiled = tiff.isTiled
        let blockSize = tiled
            ? (tiff.field(TIFFTAG_TILEWIDTH, as: UInt32.self), tiff.field(TIFFTAG_TILELENGTH, as: UInt32.self))
            : (UInt32(width), tiff.field(TIFFTAG_ROWSPERSTRIP, as: UInt32.self).map { min($0, UInt32(height)) })
        guard let blockWidth = blockSize.0.map(Int.init), let blockHeight = blockSize.1.map(Int.init),
              blockWidth > 0, blockHeight > 0
        else { throw .corrupt(file: path, reason: tiff.reason("missing or zero strip/tile size")) }
        guard width * height <= maximumImagePixels, blockWidth * blockHeight <= maximumImagePixels else {
            throw .corrupt(file: path, reason: "implausible size \(width)×\(height) in \(blockWidth)×\(blockHeight) blocks")
        }
        let blocks = TIFFBlockLayout(height: height, width: width, samples: samples, bytesPerSample: kind.bytes, tiled: tiled,
                                     blockWidth: blockWidth, blockHeight: blockHeight,
                                     separatePlanes: Int32(planar) == PLANARCONFIG_SEPARATE)
        var image = TIFFRaster.Samples.zeros(kind, count: height * width * samples)
        var buffer = [UInt8](repeating: 0, count: blocks.blockBytes)
        try image.withUnsafeMutableBytes { (image) throws(ImageFileError) in
            for block in blocks.blocks {
                try buffer.withUnsafeMutableBufferPointer { (scratch) throws(ImageFileError) in
                    let scratch = UnsafeMutableRawBufferPointer(scratch)
                    let decoded = try tiff.readBlock(block.index, tiled: tiled, into: scratch)
                    guard decoded >= blocks.decodedBytes(of: block) else {
                        throw .corrupt(file: path, reason: tiff.reason(
                            "\(tiled ? "tile" : "strip") \(block.index) holds \(decoded) bytes, expected \(blocks.decodedBytes(of: block))"))
                    }
                    blocks.scatter(block, from: scratch.baseAddress!, into: image.baseAddress!)
                }
            }
        }
        return TIFFRaster(height: height, width: width, channels: samples, samples: image, interpretation: interpretation)
    }
}

/// A TIFF image's samples, interleaved [height, width, channels], in host byte order.
public struct TIFFRaster: Sendable, Equatable {
    public enum SampleKind: Sendable, Equatable {
        case uint8, uint16, float32
        var bytes: Int {
            switch self {
            case .uint8: 1
            case .uint16: 2
            case .float32: 4
            }
        }
    }

    public enum Samples: Sendable, Equatable {
        case uint8([UInt8]), uint16([UInt16]), float32([Float])

        public var kind: SampleKind {
            switch self {
            case .uint8: .uint8
            case .uint16: .uint16
            case .float32: .float32
            }
        }

        public var count: Int {
            switch self {
            case let .uint8(v): v.count
            case let .uint16(v): v.count
            case let .float32(v): v.count
            }
        }

        static func zeros(_ kind: SampleKind, count: Int) -> Samples {
            switch kind {
            case .uint8: .uint8([UInt8](repeating: 0, count: count))
            case .uint16: .uint16([UInt16](repeating: 0, count: count))
            case .float32: .float32([Float](repeating: 0, count: count))
            }
        }

        /// The samples' bytes in host order.
        public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
            switch self {
            case let .uint8(v): try v.withUnsafeBufferPointer { (b) throws(E) in try body(UnsafeRawBufferPointer(b)) }
            case let .uint16(v): try v.withUnsafeBufferPointer { (b) throws(E) in try body(UnsafeRawBufferPointer(b)) }
            case let .float32(v): try v.withUnsafeBufferPointer { (b) throws(E) in try body(UnsafeRawBufferPointer(b)) }
            }
        }

        /// The samples' bytes, writable (the array is taken out of `self` first, so no copy is made).
        mutating func withUnsafeMutableBytes<E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> Void) throws(E) {
            switch self {
            case var .uint8(v): self = .uint8([]); try v.withUnsafeMutableBufferPointer { (b) throws(E) in try body(UnsafeMutableRawBufferPointer(b)) }; self = .uint8(v)
            case var .uint16(v): self = .uint16([]); try v.withUnsafeMutableBufferPointer { (b) throws(E) in try body(UnsafeMutableRawBufferPointer(b)) }; self = .uint16(v)
            case var .float32(v): self = .float32([]); try v.withUnsafeMutableBufferPointer { (b) throws(E) in try body(UnsafeMutableRawBufferPointer(b)) }; self = .float32(v)
            }
        }
    }

    /// How the file says its channels are meant: grey (min-is-black), RGB, or anything else
    /// (palette, min-is-white, CMYK, …).
    public enum Interpretation: Sendable, Equatable { case grey, rgb, other }

    public var height: Int, width: Int, channels: Int
    public var samples: Samples
    public var interpretation: Interpretation

    /// A raster; the interpretation defaults to what `TIFFFile.write` records (1 channel grey, else RGB).
    public init(height: Int, width: Int, channels: Int, samples: Samples, interpretation: Interpretation? = nil) {
        (self.height, self.width, self.channels, self.samples) = (height, width, channels, samples)
        self.interpretation = interpretation ?? (channels == 1 ? .grey : .rgb)
    }

    /// E.g. "3 channels of 8-bit unsigned integer", for errors.
    public var sampleDescription: String {
        Self.describe(channels: channels, bits: 8 * samples.kind.bytes,
                      format: UInt16(samples.kind == .float32 ? SAMPLEFORMAT_IEEEFP : SAMPLEFORMAT_UINT))
    }

    static func describe(channels: Int, bits: Int, format: UInt16) -> String {
        let kind = switch Int32(format) {
        case SAMPLEFORMAT_IEEEFP: "float"
        case SAMPLEFORMAT_INT: "signed integer"
        default: "unsigned integer"
        }
        return "\(channels) channel\(channels == 1 ? "" : "s") of \(bits)-bit \(kind)"
    }
}
