import CFMTensor
import Foundation
import ZIPFoundation

/// A PyTorch zip checkpoint (`torch.save` since 1.6), opened for reading without Python.
///
/// The archive holds `<root>/data.pkl` (the pickled object, read by `RestrictedUnpickler`),
/// `<root>/data/<key>` (one record per storage, raw little-endian elements), `<root>/version`
/// and, since PyTorch 2.1, `<root>/byteorder`. `<root>` is `archive` or the file's stem,
/// depending on the PyTorch version that saved it. Storages are read only when a tensor
/// that lives in them is materialised, so optimizer state and dropped heads cost nothing.
final class TorchCheckpoint {
    /// The checkpoint's path, for messages.
    let file: String
    /// The unpickled object (a state dict, or training-checkpoint containers around one).
    let root: PickleValue
    private let archive: Archive
    private let recordRoot: String
    private let records: [String: Entry]
    /// Every container of the pickle, emptied at the end (see `PickleContainer`).
    private let containers: [any PickleContainer]

    init(contentsOf url: URL) throws(ImportError) {
        file = url.path
        guard FileManager.default.isReadableFile(atPath: url.path) else { throw .unreadable(file: file, reason: "no such file") }
        do {
            archive = try Archive(url: url, accessMode: .read)
        } catch {
            throw .notACheckpoint(file: url.path, reason: "not a readable zip archive (truncated, or saved by PyTorch < 1.6)")
        }
        var records: [String: Entry] = [:]
        for entry in archive { records[entry.path] = entry }
        self.records = records
        guard let pickle = records.keys.filter({ $0.hasSuffix("/data.pkl") || $0 == "data.pkl" }).min() else {
            throw .notACheckpoint(file: url.path, reason: "no data.pkl in the archive")
        }
        recordRoot = String(pickle.dropLast("data.pkl".count))
        if let order = records[recordRoot + "byteorder"] {
            let text = String(decoding: try Self.read(order, of: archive, file: file), as: UTF8.self)
            guard text == "little" else { throw .notACheckpoint(file: url.path, reason: "storages are \(text)-endian") }
        }
        var unpickler = RestrictedUnpickler(Array(try Self.read(records[pickle]!, of: archive, file: file)), file: file)
        do {
            root = try unpickler.load()
        } catch {
            for container in unpickler.containers { container.empty() }
            throw error
        }
        containers = unpickler.containers
    }

    deinit { for container in containers { container.empty() } }

    /// The tensor `reference` as Float32, laid out contiguously in row-major order (what
    /// `.float().contiguous()` gives), after checking that its view lies inside its storage.
    func tensor(_ reference: TensorReference) throws(ImportError) -> Tensor {
        let storage = reference.storage
        func refuse(_ reason: String) -> ImportError { .badStorage(file: file, storage: storage.key, reason: reason) }
        guard let entry = records[recordRoot + "data/" + storage.key] else { throw refuse("no record data/\(storage.key) in the archive") }
        let shape = reference.shape, strides = reference.strides
        guard reference.offset >= 0, shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }) else {
            throw refuse("negative offset, size or stride in a tensor of shape \(shape)")
        }
        let count = shape.reduce(1, *)
        let lastIndex = reference.offset + zip(shape, strides).reduce(0) { $0 + ($1.0 - 1) * $1.1 }
        guard count == 0 || lastIndex < storage.count else {
            throw refuse("\(storage.count) elements, but a tensor of shape \(shape) (strides \(strides), offset \(reference.offset)) reaches element \(lastIndex)")
        }
        let bytes = try Self.read(entry, of: archive, file: file)
        guard bytes.count >= storage.count * storage.dtype.itemSize else {
            throw refuse("\(bytes.count) bytes, shorter than its \(storage.count) \(storage.dtype.rawValue) elements (\(storage.count * storage.dtype.itemSize) bytes)")
        }
        var scalars = [Float](repeating: 0, count: count)
        let contiguous = strides == Self.contiguousStrides(shape)
        bytes.withUnsafeBytes { raw in
            #if _endian(little)
            if contiguous, storage.dtype == .float32 {   // the common case: a plain copy
                scalars.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[(4 * reference.offset)...].prefix(4 * count))) }
                return
            }
            #endif
            scalars.withUnsafeMutableBufferPointer { out in
                var index = [Int](repeating: 0, count: shape.count)   // row-major counter over `shape`
                var source = reference.offset
                for i in 0..<count {
                    out[i] = storage.dtype.load(raw, index: source)
                    var axis = shape.count - 1
                    while axis >= 0 {
                        index[axis] += 1
                        source += strides[axis]
                        if index[axis] < shape[axis] { break }
                        source -= index[axis] * strides[axis]
                        index[axis] = 0
                        axis -= 1
                    }
                }
            }
        }
        return Tensor(shape: shape, scalars: scalars)
    }

    /// Row-major strides of a contiguous tensor of `shape`.
    private static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        for axis in shape.indices.dropLast().reversed() { strides[axis] = strides[axis + 1] * shape[axis + 1] }
        return strides
    }

    /// The uncompressed bytes of one record, CRC-checked.
    private static func read(_ entry: Entry, of archive: Archive, file: String) throws(ImportError) -> Data {
        var data = Data(capacity: Int(entry.uncompressedSize))
        do {
            _ = try archive.extract(entry, bufferSize: 1 << 20) { data.append($0) }
        } catch {
            throw .notACheckpoint(file: file, reason: "record \(entry.path) is damaged (\(error))")
        }
        return data
    }
}
