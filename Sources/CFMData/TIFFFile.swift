import CFMTensor
import CLibTIFF
import Foundation

/// Float32 TIFF reading and writing through libtiff: organized point clouds [H, W, 3] as
/// MVTec 3D-AD stores them (metres, camera frame) and single-channel maps [H, W].
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
        try read(url, channels: 3)
    }

    /// Reads a single-channel float32 map as a tensor [height, width].
    public static func readMap(_ url: URL) throws(ImageFileError) -> Tensor {
        let map = try read(url, channels: 1)
        return map.reshaped(Array(map.shape.prefix(2)))
    }

    /// Writes a float32 tensor [height, width] or [height, width, channels] (channels 1 or 3).
    /// Equal tensors and layouts give byte-identical files.
    public static func write(_ tensor: Tensor, to url: URL, layout: Layout = .plain) throws(ImageFileError) {
        let path = url.path
        guard (2...3).contains(tensor.shape.count), tensor.shape.count == 2 || [1, 3].contains(tensor.shape[2]),
              tensor.shape[0] > 0, tensor.shape[1] > 0
        else {
            throw .unwritable(file: path, reason: "tensor of shape \(tensor.shape) is neither [H, W] nor [H, W, 1 or 3]")
        }
        if let tile = layout.tileSize, tile <= 0 || tile % 16 != 0 {
            throw .unwritable(file: path, reason: "tile size \(tile) is not a positive multiple of 16")
        }
        if layout.floatingPointPredictor && (layout.byteOrder == .bigEndian || layout.compression == .none) {
            throw .unwritable(file: path, reason: "the floating-point predictor needs a compression and little-endian byte order")
        }
        let (height, width) = (tensor.shape[0], tensor.shape[1])
        let samples = tensor.shape.count == 3 ? tensor.shape[2] : 1
        let tiff = try TIFFHandle(path: path, mode: layout.byteOrder == .bigEndian ? "wb" : "wl")
        try tiff.set(TIFFTAG_IMAGEWIDTH, UInt32(width))
        try tiff.set(TIFFTAG_IMAGELENGTH, UInt32(height))
        try tiff.set(TIFFTAG_SAMPLESPERPIXEL, Int32(samples))
        try tiff.set(TIFFTAG_BITSPERSAMPLE, Int32(32))
        try tiff.set(TIFFTAG_SAMPLEFORMAT, Int32(SAMPLEFORMAT_IEEEFP))
        try tiff.set(TIFFTAG_PHOTOMETRIC, Int32(samples == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK))
        try tiff.set(TIFFTAG_PLANARCONFIG, Int32(layout.separatePlanes ? PLANARCONFIG_SEPARATE : PLANARCONFIG_CONTIG))
        try tiff.set(TIFFTAG_COMPRESSION, layout.compression.tag)
        if layout.floatingPointPredictor { try tiff.set(TIFFTAG_PREDICTOR, Int32(PREDICTOR_FLOATINGPOINT)) }
        let blocks: TIFFBlockLayout
        if let tile = layout.tileSize {
            try tiff.set(TIFFTAG_TILEWIDTH, UInt32(tile))
            try tiff.set(TIFFTAG_TILELENGTH, UInt32(tile))
            blocks = TIFFBlockLayout(height: height, width: width, samples: samples, tiled: true,
                                     blockWidth: tile, blockHeight: tile, separatePlanes: layout.separatePlanes)
        } else {
            let rows = min(Int(tiff.defaultRowsPerStrip), height)
            try tiff.set(TIFFTAG_ROWSPERSTRIP, UInt32(rows))
            blocks = TIFFBlockLayout(height: height, width: width, samples: samples, tiled: false,
                                     blockWidth: width, blockHeight: rows, separatePlanes: layout.separatePlanes)
        }
        var buffer = [Float](repeating: 0, count: blocks.blockBytes / MemoryLayout<Float>.size)
        try tensor.scalars.withUnsafeBufferPointer { (image) throws(ImageFileError) in
            for block in blocks.blocks {
                try buffer.withUnsafeMutableBufferPointer { (scratch) throws(ImageFileError) in
                    scratch.update(repeating: 0)
                    blocks.gather(block, from: image.baseAddress!, into: scratch.baseAddress!)
                    let bytes = UnsafeMutableRawBufferPointer(scratch)
                    try tiff.writeBlock(block.index, tiled: blocks.tiled, bytes: UnsafeMutableRawBufferPointer(
                        rebasing: bytes[0..<blocks.decodedBytes(of: block)]))
                }
            }
        }
        try tiff.finishWriting()
    }

    /// Reads the first image of a float32 TIFF with `channels` samples per pixel → [H, W, channels].
    static func read(_ url: URL, channels: Int) throws(ImageFileError) -> Tensor {
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
        let expected = channels == 1 ? "1 float32 channel" : "\(channels) float32 channels"
        guard samples == channels, bits == 32, format == SAMPLEFORMAT_IEEEFP else {
            let kind = switch Int32(format) {
            case SAMPLEFORMAT_IEEEFP: "float"
            case SAMPLEFORMAT_INT: "signed integer"
            default: "unsigned integer"
            }
            throw .unexpectedFormat(file: path, found: "\(samples) channel\(samples == 1 ? "" : "s") of \(bits)-bit \(kind)",
                                    expected: expected)
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
        let blocks = TIFFBlockLayout(height: height, width: width, samples: samples, tiled: tiled, blockWidth: blockWidth,
                                     blockHeight: blockHeight, separatePlanes: Int32(planar) == PLANARCONFIG_SEPARATE)
        var image = Tensor(shape: [height, width, channels])
        var buffer = [Float](repeating: 0, count: blocks.blockBytes / MemoryLayout<Float>.size)
        try image.scalars.withUnsafeMutableBufferPointer { (image) throws(ImageFileError) in
            for block in blocks.blocks {
                try buffer.withUnsafeMutableBufferPointer { (scratch) throws(ImageFileError) in
                    let decoded = try tiff.readBlock(block.index, tiled: tiled, into: UnsafeMutableRawBufferPointer(scratch))
                    guard decoded >= blocks.decodedBytes(of: block) else {
                        throw .corrupt(file: path, reason: tiff.reason(
                            "\(tiled ? "tile" : "strip") \(block.index) holds \(decoded) bytes, expected \(blocks.decodedBytes(of: block))"))
                    }
                    blocks.scatter(block, from: scratch.baseAddress!, into: image.baseAddress!)
                }
            }
        }
        return image
    }
}
