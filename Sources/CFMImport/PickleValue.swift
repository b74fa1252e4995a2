/// The element types of PyTorch storages (`torch.FloatStorage` …), with their byte sizes.
enum StorageDType: String, CaseIterable, Sendable {
    case float32 = "FloatStorage", float16 = "HalfStorage", bfloat16 = "BFloat16Storage", float64 = "DoubleStorage"
    case int64 = "LongStorage", int32 = "IntStorage", int16 = "ShortStorage", int8 = "CharStorage"
    case uint8 = "ByteStorage", bool = "BoolStorage"

    /// Bytes per element.
    var itemSize: Int {
        switch self {
        case .float64, .int64: 8
        case .float32, .int32: 4
        case .float16, .bfloat16, .int16: 2
        case .int8, .uint8, .bool: 1
        }
    }

    /// Element `index` of the little-endian bytes `raw`, converted to Float32 as PyTorch's
    /// `.float()` converts it: f16 and bf16 widen exactly, f64 and integers round to nearest even.
    func load(_ raw: UnsafeRawBufferPointer, index i: Int) -> Float {
        switch self {
        case .float32: Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
        case .float16: Float(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))))
        case .bfloat16: Float(bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
        case .float64: Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
        case .int64: Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
        case .int32: Float(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
        case .int16: Float(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)))
        case .int8: Float(raw.load(fromByteOffset: i, as: Int8.self))
        case .uint8: Float(raw[i])
        case .bool: raw[i] == 0 ? 0 : 1
        }
    }
}

/// One storage of a checkpoint: the archive record `data/<key>` holding `count` elements.
struct StorageReference: Equatable {
    var key: String, dtype: StorageDType, count: Int
}

/// A tensor as `torch._utils._rebuild_tensor_v2` describes it: a view (offset, shape and
/// strides, in elements) into a storage. Nothing is read until the tensor is materialised.
struct TensorReference: Equatable {
    var storage: StorageReference
    var offset: Int, shape: [Int], strides: [Int]
}

/// The globals a state-dict checkpoint may name — everything else is refused. None of them
/// runs code here: each is interpreted by the unpickler (containers, tensor views) or kept
/// as an inert object that is never looked into (argparse namespaces, numpy values).
enum AllowedGlobal: Equatable {
    case orderedDict, rebuildTensor, rebuildParameter, rebuildParameterWithState, torchSize
    case storage(StorageDType)
    /// `argparse.Namespace` and numpy's dtype / array / scalar reconstructors, by name.
    case inert(String)

    init?(module: String, name: String) {
        switch (module, name) {
        case ("collections", "OrderedDict"): self = .orderedDict
        case ("torch._utils", "_rebuild_tensor_v2"): self = .rebuildTensor
        case ("torch._utils", "_rebuild_parameter"): self = .rebuildParameter
        case ("torch._utils", "_rebuild_parameter_with_state"): self = .rebuildParameterWithState
        case ("torch", "Size"): self = .torchSize
        case ("torch", _):
            guard let dtype = StorageDType(rawValue: name) else { return nil }
            self = .storage(dtype)
        case ("argparse", "Namespace"), ("numpy", "dtype"), ("numpy", "ndarray"),
             ("numpy.core.multiarray", "scalar"), ("numpy.core.multiarray", "_reconstruct"):
            self = .inert("\(module).\(name)")
        default: return nil
        }
    }
}

/// A hashable dictionary key: the scalar types (and tuples of them) Python dict keys take in
/// checkpoints — parameter names, optimizer parameter indices.
indirect enum PickleKey: Hashable, CustomStringConvertible {
    case none, bool(Bool), int(Int64), float(UInt64), string(String), tuple([PickleKey])

    var description: String {
        switch self {
        case .none: "None"
        case let .bool(b): b ? "True" : "False"
        case let .int(i): "\(i)"
        case let .float(bits): "\(Double(bitPattern: bits))"
        case let .string(s): s
        case let .tuple(items): "(" + items.map(\.description).joined(separator: ", ") + ")"
        }
    }
}

/// A list, dict or tuple built by the unpickler. Containers are references, so a value never
/// nests another by value: the unpickler keeps every container it makes and empties them all
/// when done (`empty`), so that letting go of a structure nested a million deep (a few MB of
/// pickle) never recurses once per level, and reference cycles are broken.
protocol PickleContainer: AnyObject {
    /// Drops every element.
    func empty()
}

/// A list under construction; a reference because pickle appends to it through the memo.
final class PickleList: PickleContainer {
    var items: [PickleValue] = []
    func empty() { items = [] }
}

/// A tuple (immutable in Python; a reference here only so that nesting stays shallow).
final class PickleTuple: PickleContainer {
    private(set) var items: [PickleValue]
    init(_ items: [PickleValue]) { self.items = items }
    func empty() { items = [] }
}

/// An insertion-ordered dict (Python's `dict` and `OrderedDict` alike); a reference because
/// pickle fills it through the memo after creating it.
final class PickleDict: PickleContainer {
    private(set) var keys: [PickleKey] = []
    private var values: [PickleKey: PickleValue] = [:]

    var count: Int { keys.count }
    subscript(key: PickleKey) -> PickleValue? { values[key] }

    /// Python's `d[key] = value`: a new key goes last, an existing one keeps its place.
    func set(_ key: PickleKey, _ value: PickleValue) {
        if values.updateValue(value, forKey: key) == nil { keys.append(key) }
    }

    /// The entries in insertion order.
    var entries: [(key: PickleKey, value: PickleValue)] { keys.map { ($0, values[$0]!) } }

    func empty() { (keys, values) = ([], [:]) }
}

/// A value built by the restricted unpickler: Python's plain data, tensor views and inert
/// objects — nothing that can execute.
enum PickleValue {
    case none, bool(Bool), int(Int64), float(Double), string(String), bytes([UInt8])
    case tuple(PickleTuple)
    case list(PickleList)
    case dict(PickleDict)
    case global(AllowedGlobal)
    case storage(StorageReference)
    case tensor(TensorReference)
    /// An allowed but uninterpreted object (an argparse namespace, a numpy value), by class name.
    case inert(String)

    /// The Python type name, for messages.
    var typeName: String {
        switch self {
        case .none: "NoneType"
        case .bool: "bool"
        case .int: "int"
        case .float: "float"
        case .string: "str"
        case .bytes: "bytes"
        case .tuple: "tuple"
        case .list: "list"
        case .dict: "dict"
        case .global: "type"
        case .storage: "Storage"
        case .tensor: "Tensor"
        case let .inert(name): name
        }
    }

    /// The value as a dict key, if Python could hash it (tuples nested at most 8 deep).
    var key: PickleKey? { key(depth: 0) }

    private func key(depth: Int) -> PickleKey? {
        switch self {
        case .none: PickleKey.none
        case let .bool(b): .bool(b)
        case let .int(i): .int(i)
        case let .float(d): .float(d.bitPattern)
        case let .string(s): .string(s)
        case let .tuple(tuple) where depth < 8:
            tuple.items.allSatisfy({ $0.key(depth: depth + 1) != nil }) ? .tuple(tuple.items.map { $0.key(depth: depth + 1)! }) : nil
        default: nil
        }
    }
}
