/// A growable buffer a worker reuses across queries: `removeAll()` keeps the memory, so
/// steady-state appends never allocate.
final class ScratchBuffer<Element> {
    private(set) var base: UnsafeMutablePointer<Element>
    private(set) var capacity: Int
    private(set) var count = 0

    init(capacity: Int) {
        self.capacity = max(1, capacity)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    var isFull: Bool { count == capacity }

    /// The elements held, for in-place work.
    var elements: UnsafeMutableBufferPointer<Element> { UnsafeMutableBufferPointer(start: base, count: count) }

    @inline(__always)
    func append(_ element: Element) {
        if count == capacity { grow() }
        (base + count).initialize(to: element)
        count += 1
    }

    /// Keeps the first `newCount` elements (for element types without cleanup).
    func truncate(to newCount: Int) {
        precondition(newCount <= count)
        count = newCount
    }

    func removeAll() { count = 0 }

    /// Doubles the capacity, keeping the elements.
    func grow() {
        let bigger = UnsafeMutablePointer<Element>.allocate(capacity: 2 * capacity)
        bigger.moveInitialize(from: base, count: count)
        base.deallocate()
        base = bigger
        capacity *= 2
    }
}
