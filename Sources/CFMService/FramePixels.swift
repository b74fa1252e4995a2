/// The pixel values of a decoded frame, `count` `Element`s ([H·W·3]: RGB bytes or XYZ Float32),
/// in one of two places:
///
/// - **owned**: an array — a `FrameBufferPool` buffer the decoder converted a layout into
///   (`bgr8`, `mono8`, depth, …), or a caller's (`Frame(frameId:…rgb:cloud:)`);
/// - **borrowed**: the received message part they arrived in, for the layouts whose wire bytes
///   already are these values (`rgb8`; `xyz_f32le`, validated and cleaned where it is). The
///   part is kept alive here and goes back to libzmq as soon as the last frame value holding
///   it is gone — in `cfm serve`, when preprocessing returns — so a frame costs no copy of its
///   pixels and its memory does not linger.
///
/// A value type like an array: copies share the storage, and a write through a copy that is
/// not the only holder first copies the values into an array of its own. So the frame the
/// pipeline keeps for a recorder stays as received while preprocessing edits its copy, and a
/// frame handed over alone is edited in the message's bytes.
///
/// Sendable: the borrowed memory is reached only through `FramePixels` values, and a value
/// writes it only when it is the only holder.
public struct FramePixels<Element: BitwiseCopyable & Sendable>: @unchecked Sendable {
    /// The values when owned; empty when borrowed.
    private var owned: [Element]
    /// The message part holding the values, when borrowed (its only holders are frame values,
    /// so its reference count says whether this value may write).
    private var lender: MessagePart?
    /// The values inside `lender`'s bytes, when borrowed.
    private var borrowed = UnsafeMutableBufferPointer<Element>(start: nil, count: 0)

    /// Owned values.
    public init(_ values: [Element] = []) { owned = values }

    /// Values inside `part`'s bytes, which this value keeps alive.
    init(borrowing part: MessagePart, values: UnsafeMutableBufferPointer<Element>) {
        (owned, lender, borrowed) = ([], part, values)
    }

    /// The values live in a received message part (not in an array).
    public var isBorrowed: Bool { lender != nil }

    public var count: Int { lender == nil ? owned.count : borrowed.count }

    /// Calls `body` with the values, valid only during the call.
    public func withUnsafeBufferPointer<R, E: Error>(_ body: (UnsafeBufferPointer<Element>) throws(E) -> R) throws(E) -> R {
        guard lender == nil else { return try withExtendedLifetime(lender) { () throws(E) -> R in try body(UnsafeBufferPointer(borrowed)) } }
        return try owned.withUnsafeBufferPointer { (values) throws(E) -> R in try body(values) }
    }

    /// Calls `body` with the values to write, valid only during the call; values shared with
    /// another frame value are first copied into an array of this one's own.
    public mutating func withUnsafeMutableBufferPointer<R, E: Error>(
        _ body: (UnsafeMutableBufferPointer<Element>) throws(E) -> R
    ) throws(E) -> R {
        if lender != nil && !isKnownUniquelyReferenced(&lender) {
            // The part must outlive the copy: `borrowed` is a plain pointer, so without this the
            // optimiser may release the old value (the assignment's) before the copy reads it —
            // and if the other holder lets go meanwhile, the part is freed under the copy.
            let values = withExtendedLifetime(lender) { Array(borrowed) }
            self = FramePixels(values)
        }
        if lender != nil { return try body(borrowed) }
        return try owned.withUnsafeMutableBufferPointer { (values) throws(E) -> R in try body(values) }
    }

    /// Empties this value and returns its array when it owned one (the pool reuses it); a
    /// borrowed part is let go (freed when no other frame value holds it).
    mutating func release() -> [Element]? {
        let taken = self
        self = FramePixels()
        return taken.lender == nil && !taken.owned.isEmpty ? taken.owned : nil
    }
}

extension FramePixels: RandomAccessCollection, MutableCollection {
    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    public subscript(position: Int) -> Element {
        get {
            guard lender == nil else {
                precondition(position >= 0 && position < borrowed.count, "index \(position) out of \(borrowed.count) pixel values")
                return borrowed[position]
            }
            return owned[position]
        }
        set {
            precondition(position >= 0 && position < count, "index \(position) out of \(count) pixel values")
            withUnsafeMutableBufferPointer { $0[position] = newValue }
        }
    }
}

extension FramePixels: Equatable where Element: Equatable {
    /// Same values (`==` per element), wherever they live.
    public static func == (lhs: FramePixels, rhs: FramePixels) -> Bool { lhs.elementsEqual(rhs) }
}
