/// Why a model could not be built from its weights and configuration.
public enum ModelError: Error, Equatable, CustomStringConvertible {
    case invalidBlockCount(requested: Int, available: Int)

    public var description: String {
        switch self {
        case let .invalidBlockCount(requested, available):
            "cannot run \(requested) transformer blocks of a \(available)-block model"
        }
    }
}
