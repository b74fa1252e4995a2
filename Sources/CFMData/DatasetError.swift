/// Why a dataset folder could not be read. Every case names the path involved, relative paths
/// as the caller gave them, so the one-line description says what to fix.
public enum DatasetError: Error, Equatable, CustomStringConvertible {
    /// A folder the MVTec 3D-AD layout requires does not exist.
    case missingDirectory(path: String, expected: String)
    /// A folder exists but cannot be listed.
    case unreadableDirectory(path: String, reason: String)
    /// A sample file without its partner in a sibling folder.
    case unpairedFile(file: String, missing: String)
    /// The files of one sample disagree in size.
    case sizeMismatch(sample: String, detail: String)
    /// A sample file could not be decoded.
    case file(ImageFileError)

    public var description: String {
        switch self {
        case let .missingDirectory(path, expected): "\(path): missing directory (expected \(expected))"
        case let .unreadableDirectory(path, reason): "\(path): cannot list directory: \(reason)"
        case let .unpairedFile(file, missing): "\(file): no matching \(missing)"
        case let .sizeMismatch(sample, detail): "\(sample): \(detail)"
        case let .file(error): error.description
        }
    }
}
