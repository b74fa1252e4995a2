@testable import CFMImport
import XCTest

/// Hand-written pickles: what the unpickler builds, and what it refuses.
final class RestrictedUnpicklerTests: XCTestCase {
    private func load(_ bytes: [UInt8]) throws -> PickleValue {
        var unpickler = RestrictedUnpickler(bytes, file: "test.pkl")
        return try unpickler.load()
    }

    private func ascii(_ s: String) -> [UInt8] { Array(s.utf8) }

    func testBuildsAnOrderedDictOfATensor() throws {
        // OrderedDict([("w", _rebuild_tensor_v2(storage('0', Float, 6), 0, (2, 3), (3, 1), False, OrderedDict()))])
        let storageID: [UInt8] = [0x28] + [0x58, 7, 0, 0, 0] + ascii("storage")
            + [0x63] + ascii("torch\nFloatStorage\n") + [0x58, 1, 0, 0, 0] + ascii("0") + [0x58, 3, 0, 0, 0] + ascii("cpu")
            + [0x4B, 6, 0x74, 0x51]
        let tensor: [UInt8] = [0x63] + ascii("torch._utils\n_rebuild_tensor_v2\n") + [0x28] + storageID
            + [0x4B, 0, 0x4B, 2, 0x4B, 3, 0x86, 0x4B, 3, 0x4B, 1, 0x86, 0x89]
            + [0x63] + ascii("collections\nOrderedDict\n") + [0x29, 0x52, 0x74, 0x52]
        let pickle: [UInt8] = [0x80, 2] + [0x63] + ascii("collections\nOrderedDict\n") + [0x29, 0x52, 0x71, 0]
            + [0x28, 0x58, 1, 0, 0, 0] + ascii("w") + tensor + [0x75, 0x2E]
        guard case let .dict(dict) = try load(pickle), case let .tensor(reference)? = dict[.string("w")] else {
            return XCTFail("not a dict of one tensor")
        }
        XCTAssertEqual(reference, TensorReference(storage: .init(key: "0", dtype: .float32, count: 6), offset: 0, shape: [2, 3], strides: [3, 1]))
    }

    func testNumbersStringsAndContainers() throws {
        // {"a": [1, -2, 300, 2**40, 1.5, True, None], "b": ("x",)}
        let pickle: [UInt8] = [0x80, 2, 0x7D, 0x28, 0x58, 1, 0, 0, 0] + ascii("a")
            + [0x5D, 0x28, 0x4B, 1, 0x4A, 0xFE, 0xFF, 0xFF, 0xFF, 0x4D, 0x2C, 0x01, 0x8A, 6, 0, 0, 0, 0, 0, 1]
            + [0x47, 0x3F, 0xF8, 0, 0, 0, 0, 0, 0, 0x88, 0x4E, 0x65]
            + [0x58, 1, 0, 0, 0] + ascii("b") + [0x58, 1, 0, 0, 0] + ascii("x") + [0x85, 0x75, 0x2E]
        guard case let .dict(dict) = try load(pickle), case let .list(list)? = dict[.string("a")] else { return XCTFail("shape") }
        XCTAssertEqual(list.items.map(\.typeName), ["int", "int", "int", "int", "float", "bool", "NoneType"])
        if case let .int(v) = list.items[1] { XCTAssertEqual(v, -2) } else { XCTFail() }
        if case let .int(v) = list.items[2] { XCTAssertEqual(v, 300) } else { XCTFail() }
        if case let .int(v) = list.items[3] { XCTAssertEqual(v, 1 << 40) } else { XCTFail() }
        if case let .float(v) = list.items[4] { XCTAssertEqual(v, 1.5) } else { XCTFail() }
    }

    func testRefusesEveryOtherGlobal() {
        for global in ["builtins\neval\n", "os\nsystem\n", "subprocess\nPopen\n", "torch\nload\n", "collections\ndeque\n"] {
            let pickle: [UInt8] = [0x80, 2, 0x63] + ascii(global) + [0x58, 1, 0, 0, 0] + ascii("1") + [0x85, 0x52, 0x2E]
            XCTAssertThrowsError(try load(pickle)) { error in
                let name = global.split(separator: "\n").joined(separator: ".")
                XCTAssertEqual(error as? ImportError, .refusedGlobal(file: "test.pkl", global: name))
            }
        }
    }

    func testLetsGoOfDeepNestingWithoutRecursion() throws {
        // A million nested 1-tuples (1 MB of pickle), and 200 000 nested lists built through
        // the memo: released the ordinary way, either would overflow the stack.
        let tuples: [UInt8] = [0x80, 2, 0x29] + Array(repeating: 0x85, count: 1_000_000) + [0x2E]
        let nest: [UInt8] = [0x71, 0, 0x30, 0x5D, 0x68, 0, 0x61]   // BINPUT 0, POP, EMPTY_LIST, BINGET 0, APPEND
        let lists: [UInt8] = [0x80, 2, 0x5D] + Array([[UInt8]](repeating: nest, count: 200_000).joined()) + [0x2E]
        for pickle in [tuples, lists, Array(lists.dropLast())] {
            var unpickler = RestrictedUnpickler(pickle, file: "deep.pkl")
            let root = try? unpickler.load()
            XCTAssertEqual(root == nil, pickle.last != 0x2E, "loads unless the STOP is missing")
            if case let .tuple(tuple)? = root { XCTAssertNil(PickleValue.tuple(tuple).key, "keys nest at most 8 deep") }
            for container in unpickler.containers { container.empty() }
        }
    }

    func testRefusesUnknownOpcodesAndTruncation() {
        XCTAssertThrowsError(try load([0x80, 2, 0x69, 0x2E])) { XCTAssertTrue("\($0)".contains("opcode 0x69")) }   // INST
        XCTAssertThrowsError(try load([0x80, 2, 0x58, 9, 0, 0, 0, 0x61])) { XCTAssertTrue("\($0)".contains("truncated")) }
        XCTAssertThrowsError(try load([0x80, 2, 0x8A, 9] + Array(repeating: 1, count: 9) + [0x2E])) { XCTAssertTrue("\($0)".contains("wider than 64 bits")) }
        XCTAssertThrowsError(try load([0x80, 2, 0x68, 3, 0x2E])) { XCTAssertTrue("\($0)".contains("memo 3")) }
    }
}
