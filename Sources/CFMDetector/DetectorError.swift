/// Why a frame could not be scored. Stable `code`s appear in results and logs.
public enum DetectorError: Error, Equatable, CustomStringConvertible {
    /// Fewer foreground points than one Point-MAE group needs.
    case tooFewPoints(found: Int, needed: Int)
    /// Input tensors of the wrong shape.
    case badInput(String)
    /// A coordinate is NaN or infinite.
    case nonFinite(String)

    /// Stable machine-readable code (wire protocol `error.code`).
    public var code: String {
        switch self {
        case .tooFewPoints: "too_few_points"
        case .badInput: "bad_input"
        case .nonFinite: "non_finite"
        }
    }

    public var description: String {
        switch self {
        case let .tooFewPoints(found, needed): "\(found) foreground points; at least \(needed) are needed"
        case let .badInput(detail): "bad input: \(detail)"
        case let .nonFinite(detail): "non-finite values: \(detail)"
        }
    }
}
