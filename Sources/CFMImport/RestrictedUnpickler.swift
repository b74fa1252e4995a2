/// A pickle reader that understands exactly what `torch.save` writes for a state dict (pickle
/// protocol 2, plus the few protocol 3–4 opcodes newer Pythons emit for the same data) and
/// builds plain values from it. Unlike Python's unpickler it never imports or calls anything:
/// the allowed globals (`AllowedGlobal`) are interpreted here, every other global is refused
/// with its name, and so is every opcode a state dict does not need.
struct RestrictedUnpickler {
    /// The file the pickle came from, for messages.
    let file: String
    private let bytes: [UInt8]
    private var position = 0
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]
    /// Every container made, for `PickleContainer.empty` once the result is no longer needed.
    private(set) var containers: [any PickleContainer] = []

    init(_ bytes: [UInt8], file: String) {
        (self.bytes, self.file) = (bytes, file)
    }

    /// Runs the pickle to its STOP opcode and returns the value it built.
    mutating func load() throws(ImportError) -> PickleValue {
        while true {
            let start = position
            let opcode = try byte()
            switch opcode {
            case 0x80: _ = try byte()                                  // PROTO n
            case 0x95: _ = try read(8)                                 // FRAME (protocol 4)
            case 0x2E:                                                 // STOP
                guard stack.count == 1, marks.isEmpty else { throw fail(start, "STOP with \(stack.count) values on the stack") }
                return stack[0]
            case 0x28: marks.append(stack.count)                       // MARK
            case 0x4E: stack.append(.none)                             // NONE
            case 0x88: stack.append(.bool(true))                       // NEWTRUE
            case 0x89: stack.append(.bool(false))                      // NEWFALSE
            case 0x4B: stack.append(.int(Int64(try byte())))           // BININT1
            case 0x4D: stack.append(.int(Int64(try littleEndian(2))))  // BININT2
            case 0x4A: stack.append(.int(Int64(Int32(truncatingIfNeeded: try littleEndian(4)))))  // BININT
            case 0x8A: stack.append(.int(try long(start, length: Int(try byte()))))               // LONG1
            case 0x8B: stack.append(.int(try long(start, length: Int(try littleEndian(4)))))      // LONG4
            case 0x47:                                                 // BINFLOAT: 8 bytes, big-endian
                stack.append(.float(Double(bitPattern: try read(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) })))
            case 0x58: stack.append(.string(try text(start, length: Int(try littleEndian(4)))))  // BINUNICODE
            case 0x8C: stack.append(.string(try text(start, length: Int(try byte()))))           // SHORT_BINUNICODE
            case 0x43: stack.append(.bytes(try read(Int(try byte()))))                          // SHORT_BINBYTES
            case 0x42: stack.append(.bytes(try read(Int(try littleEndian(4)))))                 // BINBYTES
            case 0x7D: stack.append(.dict(made(PickleDict())))         // EMPTY_DICT
            case 0x5D: stack.append(.list(made(PickleList())))         // EMPTY_LIST
            case 0x29: stack.append(.tuple(made(PickleTuple([]))))     // EMPTY_TUPLE
            case 0x74: stack.append(.tuple(made(PickleTuple(try popMark(start)))))   // TUPLE
            case 0x85, 0x86, 0x87:                                     // TUPLE1, TUPLE2, TUPLE3
                stack.append(.tuple(made(PickleTuple(try pop(start, Int(opcode - 0x84))))))
            case 0x71: memo[Int(try byte())] = try top(start)          // BINPUT
            case 0x72: memo[Int(try littleEndian(4))] = try top(start) // LONG_BINPUT
            case 0x94: memo[memo.count] = try top(start)               // MEMOIZE
            case 0x68: stack.append(try recall(start, Int(try byte())))            // BINGET
            case 0x6A: stack.append(try recall(start, Int(try littleEndian(4))))   // LONG_BINGET
            case 0x30: _ = try pop(start, 1)                           // POP
            case 0x31: _ = try popMark(start)                          // POP_MARK
            case 0x32: stack.append(try top(start))                    // DUP
            case 0x63:                                                 // GLOBAL module\nname\n
                stack.append(.global(try allowed(module: try line(start), name: try line(start))))
            case 0x93:                                                 // STACK_GLOBAL
                let names = try pop(start, 2)
                guard case let .string(module) = names[0], case let .string(name) = names[1] else {
                    throw fail(start, "STACK_GLOBAL without two strings")
                }
                stack.append(.global(try allowed(module: module, name: name)))
            case 0x51: stack.append(try persistent(start, try pop(start, 1)[0]))   // BINPERSID
            case 0x52:                                                 // REDUCE
                let popped = try pop(start, 2)
                guard case let .tuple(arguments) = popped[1] else { throw fail(start, "REDUCE arguments are not a tuple") }
                stack.append(try call(start, popped[0], arguments.items))
            case 0x81:                                                 // NEWOBJ cls args
                let popped = try pop(start, 2)
                guard case let .global(.inert(name)) = popped[0] else {
                    throw fail(start, "NEWOBJ of a \(popped[0].typeName)")
                }
                stack.append(.inert(name))
            case 0x62:                                                 // BUILD: obj.__setstate__(state)
                _ = try pop(start, 1)
                // An OrderedDict's state is its `_metadata` attribute (module versions), and an
                // inert object's state is never looked at; nothing else may be built.
                switch try top(start) {
                case .dict, .inert: break
                case let other: throw fail(start, "BUILD on a \(other.typeName)")
                }
            case 0x73:                                                 // SETITEM
                let pair = try pop(start, 2)
                try insert(start, pairs: pair, into: try top(start))
            case 0x75:                                                 // SETITEMS
                let items = try popMark(start)
                try insert(start, pairs: items, into: try top(start))
            case 0x61:                                                 // APPEND
                let item = try pop(start, 1)
                try append(start, item, to: try top(start))
            case 0x65:                                                 // APPENDS
                let items = try popMark(start)
                try append(start, items, to: try top(start))
            default:
                throw fail(start, "opcode 0x\(String(opcode, radix: 16)) is not used by state dicts")
            }
        }
    }

    // MARK: - Interpreting the allowed globals

    private func allowed(module: String, name: String) throws(ImportError) -> AllowedGlobal {
        guard let global = AllowedGlobal(module: module, name: name) else {
            throw .refusedGlobal(file: file, global: "\(module).\(name)")
        }
        return global
    }

    /// `callable(*arguments)` for the allowed callables.
    private mutating func call(_ at: Int, _ callable: PickleValue, _ a: [PickleValue]) throws(ImportError) -> PickleValue {
        guard case let .global(global) = callable else { throw fail(at, "REDUCE calls a \(callable.typeName)") }
        switch global {
        case .orderedDict:
            guard a.isEmpty else { throw fail(at, "OrderedDict called with arguments") }
            return .dict(made(PickleDict()))
        case .torchSize:
            guard a.count == 1, case .tuple = a[0] else { throw fail(at, "torch.Size without a tuple") }
            return a[0]
        case .rebuildTensor:
            // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
            guard a.count == 6 || a.count == 7, case let .storage(storage) = a[0], case let .int(offset) = a[1],
                  let shape = integers(a[2]), let strides = integers(a[3]), shape.count == strides.count
            else { throw fail(at, "_rebuild_tensor_v2 with unexpected arguments") }
            return .tensor(TensorReference(storage: storage, offset: Int(offset), shape: shape, strides: strides))
        case .rebuildParameter, .rebuildParameterWithState:
            // (data, requires_grad, backward_hooks[, state]): a Parameter is its tensor here.
            guard a.count >= 3, case .tensor = a[0] else { throw fail(at, "_rebuild_parameter without a tensor") }
            return a[0]
        case let .inert(name):
            return .inert(name)
        case let .storage(dtype):
            throw fail(at, "\(dtype.rawValue) called directly (storages come only as persistent ids)")
        }
    }

    /// A storage persistent id: ('storage', storage type, key, location, element count).
    private func persistent(_ at: Int, _ id: PickleValue) throws(ImportError) -> PickleValue {
        guard case let .tuple(tuple) = id, case let fields = tuple.items, fields.count == 5, case .string("storage") = fields[0],
              case let .global(.storage(dtype)) = fields[1], case let .string(key) = fields[2],
              case let .int(count) = fields[4], count >= 0
        else { throw fail(at, "persistent id is not a ('storage', type, key, location, numel) tuple") }
        return .storage(StorageReference(key: key, dtype: dtype, count: Int(count)))
    }

    private func integers(_ value: PickleValue) -> [Int]? {
        guard case let .tuple(tuple) = value else { return nil }
        var out: [Int] = []
        for item in tuple.items {
            guard case let .int(v) = item else { return nil }
            out.append(Int(v))
        }
        return out
    }

    // MARK: - Containers

    private mutating func made<Container: PickleContainer>(_ container: Container) -> Container {
        containers.append(container)
        return container
    }

    private func insert(_ at: Int, pairs: [PickleValue], into target: PickleValue) throws(ImportError) {
        guard case let .dict(dict) = target else { throw fail(at, "SETITEM on a \(target.typeName)") }
        guard pairs.count % 2 == 0 else { throw fail(at, "SETITEMS with an odd number of values") }
        for i in stride(from: 0, to: pairs.count, by: 2) {
            guard let key = pairs[i].key else { throw fail(at, "dict key of type \(pairs[i].typeName)") }
            dict.set(key, pairs[i + 1])
        }
    }

    private func append(_ at: Int, _ items: [PickleValue], to target: PickleValue) throws(ImportError) {
        guard case let .list(list) = target else { throw fail(at, "APPEND to a \(target.typeName)") }
        list.items += items
    }

    // MARK: - Stack and memo

    private func top(_ at: Int) throws(ImportError) -> PickleValue {
        guard let value = stack.last else { throw fail(at, "empty stack") }
        return value
    }

    private mutating func pop(_ at: Int, _ n: Int) throws(ImportError) -> [PickleValue] {
        guard stack.count - n >= (marks.last ?? 0) else { throw fail(at, "stack underflow") }
        defer { stack.removeLast(n) }
        return Array(stack.suffix(n))
    }

    private mutating func popMark(_ at: Int) throws(ImportError) -> [PickleValue] {
        guard let mark = marks.popLast() else { throw fail(at, "no MARK") }
        defer { stack.removeSubrange(mark...) }
        return Array(stack[mark...])
    }

    private func recall(_ at: Int, _ index: Int) throws(ImportError) -> PickleValue {
        guard let value = memo[index] else { throw fail(at, "memo \(index) was never stored") }
        return value
    }

    // MARK: - Reading bytes

    private mutating func byte() throws(ImportError) -> UInt8 { try read(1)[0] }

    private mutating func read(_ n: Int) throws(ImportError) -> [UInt8] {
        guard n >= 0, n <= bytes.count - position else {
            throw fail(position, "truncated: \(n) bytes wanted, \(bytes.count - position) left")
        }
        defer { position += n }
        return Array(bytes[position..<(position + n)])
    }

    private mutating func littleEndian(_ n: Int) throws(ImportError) -> UInt64 {
        try read(n).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }

    /// A two's-complement little-endian integer of `length` bytes (Python's LONG1 / LONG4).
    private mutating func long(_ at: Int, length: Int) throws(ImportError) -> Int64 {
        guard length <= 8 else { throw fail(at, "integer of \(length) bytes (wider than 64 bits)") }
        guard length > 0 else { return 0 }
        let raw = try read(length)
        let value = raw.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let shift = UInt64(64 - 8 * length)
        return Int64(bitPattern: value << shift) >> shift    // sign-extend
    }

    private mutating func text(_ at: Int, length: Int) throws(ImportError) -> String {
        guard let s = String(validating: try read(length), as: UTF8.self) else { throw fail(at, "string is not UTF-8") }
        return s
    }

    /// A GLOBAL operand: ASCII up to a newline.
    private mutating func line(_ at: Int) throws(ImportError) -> String {
        guard let end = bytes[position...].firstIndex(of: 0x0A), end - position <= 256 else {
            throw fail(at, "GLOBAL name without a newline")
        }
        let name = try text(at, length: end - position)
        position += 1
        return name
    }

    private func fail(_ at: Int, _ reason: String) -> ImportError {
        .malformedPickle(file: file, offset: at, reason: reason)
    }
}
