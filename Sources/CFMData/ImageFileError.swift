/// Why an image or point-cloud file could not be read or written. Every case names the file,
/// so the one-line description is actionable on its own.
public enum ImageFileError: Error, Equatable, CustomStringConvertible {
    /// The file does not exist or cannot be opened.
    case unreadable(file: String, reason: String)
    /// The file is not a valid PNG/TIFF, or decoding it failed.
    case corrupt(file: String, reason: String)
    /// A valid file whose content is not what the caller needs (channels, sample type, size).
    case unexpectedFormat(file: String, found: String, expected: String)
    /// The file cannot be created or written.
    case unwritable(file: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason): "\(file): cannot read: \(reason)"
        case let .corrupt(file, reason): "\(file): corrupt or unsupported file: \(reason)"
        case let .unexpectedFormat(file, found, expected): "\(file): \(found), expected \(expected)"
        case let .unwritable(file, reason): "\(file): cannot write: \(reason)"
        }
    }
}

/// The most pixels (of an image, or of one TIFF strip or tile) a reader accepts, so that a
/// corrupt or hostile header cannot demand an absurd allocation: 2²⁸, e.g. 16384 × 16384.
let maximumImagePixels = 1 << 28
