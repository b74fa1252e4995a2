import CLibTIFF
import Foundation

/// An open libtiff file whose errors and warnings are captured instead of printed: libtiff's
/// process-wide stderr handlers are switched off, and each file gets handlers that record the
/// messages for the typed error thrown on failure.
final class TIFFHandle {
    let path: String
    private let tif: OpaquePointer
    /// Errors libtiff reported for this file, oldest first.
    private let log: TIFFMessageLog

    /// Opens `path` with a libtiff mode ("r", "wl" little-endian write, "wb" big-endian write).
    init(path: String, mode: String) throws(ImageFileError) {
        _ = Self.silenceGlobalHandlers
        self.path = path
        let log = TIFFMessageLog(path: path)
        let options = TIFFOpenOptionsAlloc()
        defer { TIFFOpenOptionsFree(options) }
        let context = Unmanaged.passUnretained(log).toOpaque()
        TIFFOpenOptionsSetErrorHandlerExtR(options, { _, context, module, format, arguments in
            Unmanaged<TIFFMessageLog>.fromOpaque(context!).takeUnretainedValue()
                .record(module: module, format: format, arguments: arguments)
            return 1
        }, context)
        TIFFOpenOptionsSetWarningHandlerExtR(options, { _, _, _, _, _ in 1 }, nil)
        guard let tif = TIFFOpenExt(path, mode, options) else {
            let reason = log.summary ?? "libtiff could not open the file"
            throw mode == "r" ? .corrupt(file: path, reason: reason) : .unwritable(file: path, reason: reason)
        }
        self.tif = tif
        self.log = log
    }

    deinit { TIFFClose(tif) }

    /// Turns off libtiff's default handlers, which print every warning and error to stderr.
    private static let silenceGlobalHandlers: Void = {
        TIFFSetErrorHandler(nil)
        TIFFSetWarningHandler(nil)
    }()

    /// What libtiff reported so far, or `fallback`.
    func reason(_ fallback: String) -> String { log.summary ?? fallback }

    /// A tag's value (or libtiff's default for it); `T` must be the tag's C type.
    func field<T: BinaryInteger>(_ tag: Int32, as type: T.Type) -> T? {
        var value = T.zero
        let found = withUnsafeMutablePointer(to: &value) { pointer in
            withVaList([pointer]) { TIFFVGetFieldDefaulted(tif, UInt32(tag), $0) }
        }
        return found == 1 ? value : nil
    }

    /// Sets a tag: uint32 tags take a `UInt32`, uint16 tags an `Int32` (C's promoted type).
    func set(_ tag: Int32, _ value: CVarArg) throws(ImageFileError) {
        guard withVaList([value], { TIFFVSetField(tif, UInt32(tag), $0) }) == 1 else {
            throw .unwritable(file: path, reason: reason("cannot set TIFF tag \(tag)"))
        }
    }

    /// Marks the fourth sample of an RGB image as unassociated alpha (TIFFTAG_EXTRASAMPLES).
    func setUnassociatedAlpha() throws(ImageFileError) {
        var extra = UInt16(EXTRASAMPLE_UNASSALPHA)
        let done = withUnsafeMutablePointer(to: &extra) { pointer in
            withVaList([Int32(1), pointer]) { TIFFVSetField(tif, UInt32(TIFFTAG_EXTRASAMPLES), $0) }
        }
        guard done == 1 else { throw .unwritable(file: path, reason: reason("cannot set TIFF tag \(TIFFTAG_EXTRASAMPLES)")) }
    }

    var isTiled: Bool { TIFFIsTiled(tif) != 0 }

    /// Decodes block `index` (a strip or a tile) into `buffer`; returns the decoded byte count.
    func readBlock(_ index: Int, tiled: Bool, into buffer: UnsafeMutableRawBufferPointer) throws(ImageFileError) -> Int {
        let count = tiled
            ? TIFFReadEncodedTile(tif, UInt32(index), buffer.baseAddress, tmsize_t(buffer.count))
            : TIFFReadEncodedStrip(tif, UInt32(index), buffer.baseAddress, tmsize_t(buffer.count))
        guard count >= 0 else {
            throw .corrupt(file: path, reason: reason("cannot decode \(tiled ? "tile" : "strip") \(index)"))
        }
        return Int(count)
    }

    /// Encodes `bytes` as block `index` (a strip or a tile).
    func writeBlock(_ index: Int, tiled: Bool, bytes: UnsafeMutableRawBufferPointer) throws(ImageFileError) {
        let count = tiled
            ? TIFFWriteEncodedTile(tif, UInt32(index), bytes.baseAddress, tmsize_t(bytes.count))
            : TIFFWriteEncodedStrip(tif, UInt32(index), bytes.baseAddress, tmsize_t(bytes.count))
        guard count >= 0 else {
            throw .unwritable(file: path, reason: reason("cannot encode \(tiled ? "tile" : "strip") \(index)"))
        }
    }

    /// Writes the directory and flushes the file.
    func finishWriting() throws(ImageFileError) {
        guard TIFFWriteDirectory(tif) == 1, TIFFFlush(tif) == 1 else {
            throw .unwritable(file: path, reason: reason("cannot write the TIFF directory"))
        }
    }

    /// libtiff's strip height for about 8 KiB strips (its default layout).
    var defaultRowsPerStrip: UInt32 { TIFFDefaultStripSize(tif, 0) }
}

/// Collects the error messages libtiff reports for one file.
private final class TIFFMessageLog {
    let path: String
    private(set) var messages: [String] = []

    init(path: String) { self.path = path }

    func record(module: UnsafePointer<CChar>?, format: UnsafePointer<CChar>?, arguments: CVaListPointer?) {
        guard let format, let arguments else { return }
        var text = [CChar](repeating: 0, count: 512)
        _ = vsnprintf(&text, text.count, format, arguments)
        let message = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // libtiff names the module (a function, or the file itself, which the error names anyway).
        let module = module.map { String(cString: $0) }
        messages.append(module == nil || module == path ? message : "\(module!): \(message)")
    }

    /// The first message (the cause; later ones are consequences), or nil if none.
    var summary: String? { messages.first }
}
