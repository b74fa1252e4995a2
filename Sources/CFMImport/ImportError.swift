import CFMTensor

/// Why a release file could not be imported. Every case names the file it is about and
/// reads as one line, so the command can print it as the whole diagnosis.
public enum ImportError: Error, Equatable, CustomStringConvertible {
    /// The file cannot be opened or read at all.
    case unreadable(file: String, reason: String)
    /// A `.safetensors` input that cannot be read (its error names the file).
    case safetensors(SafeTensorsError)
    /// Not a PyTorch zip checkpoint (or a damaged one): no archive, no `data.pkl`, big-endian data.
    case notACheckpoint(file: String, reason: String)
    /// The pickle names a global outside the state-dict vocabulary (say `os.system`).
    case refusedGlobal(file: String, global: String)
    /// The pickle stream itself is malformed or uses an opcode a state dict never needs.
    case malformedPickle(file: String, offset: Int, reason: String)
    /// A tensor's storage is missing, too short for the tensor, or of an unusable dtype.
    case badStorage(file: String, storage: String, reason: String)
    /// The checkpoint holds tensors, but not the architecture expected of it
    /// (a missing, misshaped or unexpected key, no state dict at all, a wrong mapper).
    case wrongArchitecture(file: String, reason: String)
    /// The files are fine one by one but do not belong together (mapper dimensions, classes).
    case inconsistent(reason: String)
    /// The output cannot be written (exists already, no permission, disk full).
    case unwritable(path: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason): "\(file): cannot read: \(reason)"
        case let .safetensors(error): error.description
        case let .notACheckpoint(file, reason): "\(file): not a PyTorch zip checkpoint: \(reason)"
        case let .refusedGlobal(file, global):
            "\(file): refusing to unpickle \(global) (a state dict holds only tensors, containers, numbers and strings)"
        case let .malformedPickle(file, offset, reason): "\(file): malformed pickle at byte \(offset): \(reason)"
        case let .badStorage(file, storage, reason): "\(file): storage \(storage): \(reason)"
        case let .wrongArchitecture(file, reason): "\(file): \(reason)"
        case let .inconsistent(reason): reason
        case let .unwritable(path, reason): "\(path): cannot write: \(reason)"
        }
    }
}
