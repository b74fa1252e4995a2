import CFMTensor

/// Why a geometry operation refused its input. Every case names the argument or the
/// operation involved, so the one-line description is actionable.
public enum GeometryError: Error, Equatable, CustomStringConvertible {
    /// A tensor argument does not have the shape the operation needs.
    case shapeMismatch(argument: String, expected: String, found: [Int])
    /// Fewer points than the operation needs (e.g. k neighbours among fewer than k points).
    case tooFewPoints(operation: String, required: Int, available: Int)
    /// A parameter outside its valid range.
    case invalidParameter(name: String, value: String, requirement: String)

    public var description: String {
        switch self {
        case let .shapeMismatch(argument, expected, found):
            "\(argument) has shape \(found), expected \(expected)"
        case let .tooFewPoints(operation, required, available):
            "\(operation) needs at least \(required) points, got \(available)"
        case let .invalidParameter(name, value, requirement):
            "\(name) = \(value) is invalid: it must be \(requirement)"
        }
    }
}

/// Checks that `tensor` is a list of 3D points, shape [N, 3], and returns N.
func pointCount(of tensor: Tensor, argument: String) throws(GeometryError) -> Int {
    guard tensor.shape.count == 2, tensor.shape[1] == 3 else {
        throw .shapeMismatch(argument: argument, expected: "[N, 3]", found: tensor.shape)
    }
    return tensor.shape[0]
}
