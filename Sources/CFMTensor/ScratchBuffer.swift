/// A fixed-size, zero-initialised buffer with a stable address: scratch memory that
/// a model allocates once and reuses for every frame, and that parallel workers write in
/// disjoint parts. It belongs to one workspace, used by one caller at a time.
public final class ScratchBuffer<Element: Numeric>: @unchecked Sendable {
    /// Number of elements.
    public let count: Int
    /// First element; valid for the buffer's lifetime.
    public let base: UnsafeMutablePointer<Element>

    public init(count: Int) {
        self.count = count
        base = .allocate(capacity: max(1, count))
        base.initialize(repeating: 0, count: max(1, count))
    }

    deinit { base.deallocate() }

    /// Address of element `offset`.
    public subscript(offset: Int) -> UnsafeMutablePointer<Element> {
        precondition(offset >= 0 && offset <= count, "offset \(offset) outside a buffer of \(count)")
        return base + offset
    }

    /// Sets every element to zero.
    public func zero() { base.update(repeating: 0, count: count) }
}

extension ScratchBuffer where Element == Float {
    /// The elements from `offset` on as a tensor of `shape` (a copy).
    public func tensor(_ shape: [Int], offset: Int = 0) -> Tensor {
        Tensor(shape: shape, scalars: Array(UnsafeBufferPointer(start: base + offset, count: shape.reduce(1, *))))
    }
}
