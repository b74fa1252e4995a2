import Foundation

/// Why a safetensors file could not be read or written. Every case names the file,
/// and the key where one is involved, so the one-line description is actionable.
public enum SafeTensorsError: Error, Equatable, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    case truncated(file: String, detail: String)
    case badHeader(file: String, detail: String)
    case missingKey(file: String, key: String)
    case unsupportedDType(file: String, key: String, dtype: String)
    case shapeMismatch(file: String, key: String, expected: [Int], found: [Int])
    case unwritable(file: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason): "\(file): cannot read: \(reason)"
        case let .truncated(file, detail): "\(file): truncated safetensors file: \(detail)"
        case let .badHeader(file, detail): "\(file): invalid safetensors header: \(detail)"
        case let .missingKey(file, key): "\(file): missing tensor '\(key)'"
        case let .unsupportedDType(file, key, dtype):
            "\(file): tensor '\(key)' has dtype \(dtype); only F32, F16 and BF16 are supported"
        case let .shapeMismatch(file, key, expected, found):
            "\(file): tensor '\(key)' has shape \(found), expected \(expected)"
        case let .unwritable(file, reason): "\(file): cannot write: \(reason)"
        }
    }
}

/// A safetensors file opened for reading: 8 bytes of little-endian header length, a JSON
/// header `{name: {dtype, shape, data_offsets}}` (plus optional `__metadata__`), then the
/// raw little-endian data.
///
/// Only the header is read on opening; each `tensor` call reads that tensor's bytes
/// straight into its Float32 storage. Nothing of the file stays resident: a model that
/// loads its weights tensor by tensor peaks at the weights it keeps (a memory map would
/// add every page it touched to the resident set while it is open), and blocks a pruned
/// model does not load are never read.
public struct SafeTensors: Sendable {
    /// Where one tensor lives in the data section.
    public struct Entry: Sendable, Equatable {
        public let dtype: String
        public let shape: [Int]
        /// Byte range relative to the start of the data section.
        public let byteRange: Range<Int>
    }

    /// The file's path, as given (used in every error).
    public let path: String
    /// Tensors by name.
    public let entries: [String: Entry]
    /// The free-form string map under `__metadata__`.
    public let metadata: [String: String]
    /// The open file: tensors are read from the file that was validated, even if the path is
    /// replaced meanwhile.
    private let file: OpenFile
    private let dataStart: Int

    private static let itemSizes = ["F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4,
                                    "I16": 2, "I8": 1, "U8": 1, "BOOL": 1]

    /// Opens and validates `url`: header size, JSON structure, dtypes and that every tensor's
    /// bytes lie inside the file with the size its shape implies.
    public init(contentsOf url: URL) throws(SafeTensorsError) {
        let path = url.path
        self.path = path
        file = try OpenFile(path: path)
        let fileSize = file.size
        guard fileSize >= 8 else {
            throw .truncated(file: path, detail: "\(fileSize) bytes, fewer than the 8-byte header length")
        }
        let headerLength = try file.read(count: 8, at: 0).enumerated()
            .reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(fileSize - 8) else {
            throw .truncated(file: path, detail: "header of \(headerLength) bytes but the file has \(fileSize)")
        }
        dataStart = 8 + Int(headerLength)
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(try file.read(count: Int(headerLength), at: 8)))
        } catch let error as SafeTensorsError {
            throw error
        } catch {
            throw .badHeader(file: path, detail: "not JSON")
        }
        guard let header = json as? [String: Any] else { throw .badHeader(file: path, detail: "not a JSON object") }
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        let dataLength = fileSize - dataStart
        for (name, value) in header {
            if name == "__metadata__" {
                guard let map = value as? [String: Any] else { throw .badHeader(file: path, detail: "__metadata__ is not an object") }
                for (k, v) in map { metadata[k] = v as? String ?? "\(v)" }
                continue
            }
            guard let spec = value as? [String: Any], let dtype = spec["dtype"] as? String,
                  let shape = (spec["shape"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                  let offsets = (spec["data_offsets"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                  shape.count == (spec["shape"] as? [Any])?.count, offsets.count == 2
            else { throw .badHeader(file: path, detail: "entry '\(name)' lacks dtype, shape or data_offsets") }
            guard let itemSize = Self.itemSizes[dtype] else {
                throw .unsupportedDType(file: path, key: name, dtype: dtype)
            }
            guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1] else {
                throw .badHeader(file: path, detail: "entry '\(name)' has a negative shape or inverted offsets")
            }
            guard offsets[1] <= dataLength else {
                throw .truncated(file: path, detail: "tensor '\(name)' ends at byte \(offsets[1]) of a \(dataLength)-byte data section")
            }
            guard offsets[1] - offsets[0] == shape.reduce(itemSize, *) else {
                throw .badHeader(file: path, detail: "tensor '\(name)' of shape \(shape) \(dtype) spans \(offsets[1] - offsets[0]) bytes")
            }
            entries[name] = Entry(dtype: dtype, shape: shape, byteRange: offsets[0]..<offsets[1])
        }
        self.entries = entries
        self.metadata = metadata
    }

    /// Whether the file holds a tensor called `name`.
    public func contains(_ name: String) -> Bool { entries[name] != nil }

    /// The tensor `name` as Float32 (F16 and BF16 are widened). With `shape`, the stored
    /// shape must equal it.
    public func tensor(_ name: String, shape expected: [Int]? = nil) throws(SafeTensorsError) -> Tensor {
        guard let entry = entries[name] else { throw .missingKey(file: path, key: name) }
        if let expected, expected != entry.shape {
            throw .shapeMismatch(file: path, key: name, expected: expected, found: entry.shape)
        }
        guard let dtype = StoredFloat(rawValue: entry.dtype) else {
            throw .unsupportedDType(file: path, key: name, dtype: entry.dtype)
        }
        let count = entry.shape.reduce(1, *)
        let offset = dataStart + entry.byteRange.lowerBound
        var scalars = [Float](repeating: 0, count: count)
        if dtype == .f32 {
            // Straight into the tensor's storage: no second copy of the weights.
            try scalars.withUnsafeMutableBytes { file.read(into: $0, at: offset) }.get()
            #if _endian(big)
            for i in 0..<count { scalars[i] = Float(bitPattern: UInt32(littleEndian: scalars[i].bitPattern)) }
            #endif
        } else {
            let raw = try file.read(count: entry.byteRange.count, at: offset)
            raw.withUnsafeBytes { src in
                scalars.withUnsafeMutableBufferPointer { dst in
                    for i in 0..<count { dst[i] = dtype.load(src, index: i) }
                }
            }
        }
        return Tensor(shape: entry.shape, scalars: scalars)
    }

    /// Writes `tensors` as F32 to `url`, atomically (temporary file + rename). Keys are
    /// sorted and the header is space-padded to 8 bytes, so equal inputs give byte-identical files.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to url: URL) throws(SafeTensorsError) {
        var header = "{"
        if !metadata.isEmpty {
            header += "\"__metadata__\":{" + metadata.sorted { $0.key < $1.key }
                .map { "\(jsonString($0.key)):\(jsonString($0.value))" }.joined(separator: ",") + "},"
        }
        var offset = 0
        let names = tensors.keys.sorted()
        header += names.map { name in
            let t = tensors[name]!
            defer { offset += 4 * t.count }
            return "\(jsonString(name)):{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],"
                + "\"data_offsets\":[\(offset),\(offset + 4 * t.count)]}"
        }.joined(separator: ",") + "}"
        while header.utf8.count % 8 != 0 { header += " " }

        var data = Data(capacity: 8 + header.utf8.count + offset)
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array(header.utf8))
        for name in names {
            tensors[name]!.withUnsafeBufferPointer { buffer in
                #if _endian(big)
                for v in buffer { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
                #else
                data.append(UnsafeBufferPointer(start: buffer.baseAddress, count: buffer.count))
                #endif
            }
        }
        do {
            try data.write(to: url, options: .atomic)
        } catch {
            throw .unwritable(file: url.path, reason: (error as NSError).localizedDescription)
        }
    }
}

/// A read-only file descriptor with positional reads; closed when the last reader is gone.
private final class OpenFile: Sendable {
    let path: String
    let descriptor: Int32
    /// Size in bytes when opened.
    let size: Int

    init(path: String) throws(SafeTensorsError) {
        self.path = path
        descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .unreadable(file: path, reason: String(cString: strerror(errno))) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw .unreadable(file: path, reason: reason)
        }
        size = Int(status.st_size)
    }

    deinit { close(descriptor) }

    /// Fills `buffer` with the bytes from `offset` on (pread, retried until complete).
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Result<Void, SafeTensorsError> {
        var done = 0
        while done < buffer.count {
            let n = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                return .failure(n == 0 ? .truncated(file: path, detail: "file ended at byte \(offset + done) while reading \(buffer.count) bytes")
                    : .unreadable(file: path, reason: String(cString: strerror(errno))))
            }
            done += n
        }
        return .success(())
    }

    /// `count` bytes from `offset` on.
    func read(count: Int, at offset: Int) throws(SafeTensorsError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { read(into: $0, at: offset) }.get()
        return bytes
    }
}

/// The floating-point dtypes that can be read (and widened to Float32).
private enum StoredFloat: String {
    case f32 = "F32", f16 = "F16", bf16 = "BF16"

    /// Element `index` of little-endian `src`, as Float32.
    func load(_ src: UnsafeRawBufferPointer, index i: Int) -> Float {
        switch self {
        case .f32: Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
        case .f16: Float(Float16(bitPattern: UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))))
        case .bf16: Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
        }
    }
}

/// `s` as a JSON string literal.
private func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
