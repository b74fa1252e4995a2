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
/// raw little-endian data. The file is memory-mapped; tensors are widened to Float32 on access.
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
    private let bytes: Data
    private let dataStart: Int

    private static let itemSizes = ["F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4,
                                    "I16": 2, "I8": 1, "U8": 1, "BOOL": 1]

    /// Opens and validates `url`: header size, JSON structure, dtypes and that every tensor's
    /// bytes lie inside the file with the size its shape implies.
    public init(contentsOf url: URL) throws(SafeTensorsError) {
        let file = url.path
        path = file
        do {
            bytes = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw .unreadable(file: file, reason: (error as NSError).localizedDescription)
        }
        guard bytes.count >= 8 else {
            throw .truncated(file: file, detail: "\(bytes.count) bytes, fewer than the 8-byte header length")
        }
        let headerLength = bytes.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw .truncated(file: file, detail: "header of \(headerLength) bytes but the file has \(bytes.count)")
        }
        dataStart = 8 + Int(headerLength)
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<dataStart))
        } catch {
            throw .badHeader(file: file, detail: "not JSON")
        }
        guard let header = json as? [String: Any] else { throw .badHeader(file: file, detail: "not a JSON object") }
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        let dataLength = bytes.count - dataStart
        for (name, value) in header {
            if name == "__metadata__" {
                guard let map = value as? [String: Any] else { throw .badHeader(file: file, detail: "__metadata__ is not an object") }
                for (k, v) in map { metadata[k] = v as? String ?? "\(v)" }
                continue
            }
            guard let spec = value as? [String: Any], let dtype = spec["dtype"] as? String,
                  let shape = (spec["shape"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                  let offsets = (spec["data_offsets"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                  shape.count == (spec["shape"] as? [Any])?.count, offsets.count == 2
            else { throw .badHeader(file: file, detail: "entry '\(name)' lacks dtype, shape or data_offsets") }
            guard let itemSize = Self.itemSizes[dtype] else {
                throw .unsupportedDType(file: file, key: name, dtype: dtype)
            }
            guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1] else {
                throw .badHeader(file: file, detail: "entry '\(name)' has a negative shape or inverted offsets")
            }
            guard offsets[1] <= dataLength else {
                throw .truncated(file: file, detail: "tensor '\(name)' ends at byte \(offsets[1]) of a \(dataLength)-byte data section")
            }
            guard offsets[1] - offsets[0] == shape.reduce(itemSize, *) else {
                throw .badHeader(file: file, detail: "tensor '\(name)' of shape \(shape) \(dtype) spans \(offsets[1] - offsets[0]) bytes")
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
        var scalars = [Float](repeating: 0, count: count)
        let start = dataStart + entry.byteRange.lowerBound
        bytes.withUnsafeBytes { raw in
            let src = UnsafeRawBufferPointer(rebasing: raw[start..<(start + entry.byteRange.count)])
            scalars.withUnsafeMutableBufferPointer { dst in
                for i in 0..<count { dst[i] = dtype.load(src, index: i) }
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
