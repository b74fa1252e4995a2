import CFMTensor
import Foundation

/// A flat state dict as found in a release file: parameter names in the file's order, their
/// shapes, and each tensor read (and converted to Float32) only when asked for.
struct StateDict {
    struct Item {
        var shape: [Int]
        var load: () throws(ImportError) -> Tensor
    }

    /// The file the tensors come from, for messages.
    let file: String
    private(set) var names: [String]
    private(set) var items: [String: Item]

    /// Wrapper entries of training checkpoints, tried in this order (DINO's `teacher` first:
    /// it is the network the DINO authors evaluate).
    static let wrappers = ["teacher", "base_model", "model", "state_dict", "student"]
    /// Key prefixes added by DataParallel and by the releases' module nesting.
    static let prefixes = ["module.", "backbone.", "MAE_encoder."]

    /// The state dict of a release file: a timm `.safetensors` file as it is, or a PyTorch
    /// zip checkpoint unwrapped from its training containers — with the prefixes removed.
    static func read(_ url: URL) throws(ImportError) -> StateDict {
        var state: StateDict
        if url.pathExtension == "safetensors" {
            let weights: SafeTensors
            do { weights = try SafeTensors(contentsOf: url) } catch { throw .safetensors(error) }
            var items: [String: Item] = [:]
            for (name, entry) in weights.entries {
                items[name] = Item(shape: entry.shape) { () throws(ImportError) -> Tensor in
                    do throws(SafeTensorsError) { return try weights.tensor(name) } catch { throw .safetensors(error) }
                }
            }
            state = StateDict(file: url.path, names: weights.entries.keys.sorted(), items: items)
        } else {
            let checkpoint = try TorchCheckpoint(contentsOf: url)
            state = try unwrap(checkpoint.root, file: url.path) { reference in
                { () throws(ImportError) -> Tensor in try checkpoint.tensor(reference) }
            }
        }
        try state.stripPrefixes()
        return state
    }

    /// Descends through training-checkpoint wrappers (`Self.wrappers`) to the first dict whose
    /// values are all tensors.
    private static func unwrap(_ root: PickleValue, file: String,
                               loader: (TensorReference) -> () throws(ImportError) -> Tensor) throws(ImportError) -> StateDict {
        var object = root
        while true {
            guard case let .dict(dict) = object else {
                throw .wrongArchitecture(file: file, reason: "checkpoint holds a \(object.typeName), not a state dict")
            }
            var tensors: [(PickleKey, TensorReference)] = []
            for (key, value) in dict.entries {
                guard case let .tensor(reference) = value else { break }
                tensors.append((key, reference))
            }
            if dict.count > 0, tensors.count == dict.count {
                var names: [String] = [], items: [String: Item] = [:]
                for (key, reference) in tensors {
                    guard case let .string(name) = key else {
                        throw .wrongArchitecture(file: file, reason: "state dict key \(key) is not a string")
                    }
                    names.append(name)
                    items[name] = Item(shape: reference.shape, load: loader(reference))
                }
                return StateDict(file: file, names: names, items: items)
            }
            let inner = wrappers.lazy.compactMap { name -> PickleValue? in
                if case .dict = dict[.string(name)] { return dict[.string(name)] }
                return nil
            }.first
            guard let inner else {
                let keys = dict.keys.map(\.description).sorted().prefix(8).joined(separator: ", ")
                throw .wrongArchitecture(file: file, reason: "no state dict found (top-level keys: \(keys))")
            }
            object = inner
        }
    }

    /// Removes `Self.prefixes` from the start of every name, repeatedly (`module.MAE_encoder.x` → `x`).
    private mutating func stripPrefixes() throws(ImportError) {
        var stripped: [String] = [], strippedItems: [String: Item] = [:]
        for original in names {
            var name = original[...]
            while let prefix = Self.prefixes.first(where: { name.hasPrefix($0) }) { name = name.dropFirst(prefix.count) }
            guard strippedItems[String(name)] == nil else {
                throw .wrongArchitecture(file: file, reason: "key \(original) collides with another key after removing prefixes")
            }
            stripped.append(String(name))
            strippedItems[String(name)] = items[original]
        }
        (names, items) = (stripped, strippedItems)
    }

    /// Shape of `name`, if present.
    func shape(_ name: String) -> [Int]? { items[name]?.shape }

    /// Exactly the parameters of `expected` (name, shape), in that order, as Float32 tensors,
    /// and the sorted names of the entries left out. Refused with the first problem: a missing
    /// or misshaped parameter, or a left-out entry that belongs to the kept modules or is an
    /// extra transformer block (which would mean another architecture, not a larger file).
    func select(_ expected: [(String, [Int])]) throws(ImportError) -> (tensors: [(String, Tensor)], dropped: [String]) {
        for (name, shape) in expected {
            guard let found = items[name]?.shape else {
                throw .wrongArchitecture(file: file, reason: "missing key \(name) (expected shape \(shape))")
            }
            guard found == shape else {
                throw .wrongArchitecture(file: file, reason: "key \(name) has shape \(found), expected \(shape)")
            }
        }
        let kept = Set(expected.map(\.0))
        let dropped = names.filter { !kept.contains($0) }.sorted()
        let modules = Set(expected.map { Self.module(of: $0.0) })
        for name in dropped where !name.hasSuffix(".num_batches_tracked") {
            if modules.contains(Self.module(of: name)) || Self.isBlockKey(name) {
                throw .wrongArchitecture(file: file, reason: "unexpected key \(name) (not part of the expected architecture)")
            }
        }
        var tensors: [(String, Tensor)] = []
        for (name, _) in expected { tensors.append((name, try items[name]!.load())) }
        return (tensors, dropped)
    }

    /// The name without its last component (`blocks.0.attn.qkv.bias` → `blocks.0.attn.qkv`).
    private static func module(of name: String) -> Substring {
        name.lastIndex(of: ".").map { name[..<$0] } ?? name[...]
    }

    /// Whether `name` starts with `blocks.` (once or more) and a block number: `blocks.12.…`, `blocks.blocks.3.…`.
    private static func isBlockKey(_ name: String) -> Bool {
        var rest = name[...]
        guard rest.hasPrefix("blocks.") else { return false }
        while rest.hasPrefix("blocks.") { rest = rest.dropFirst("blocks.".count) }
        let digits = rest.prefix(while: { $0.isASCII && $0.isNumber })
        return !digits.isEmpty && rest.dropFirst(digits.count).hasPrefix(".")
    }
}
