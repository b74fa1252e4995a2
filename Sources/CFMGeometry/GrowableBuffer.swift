/// A growable buffer a worker reuses across queries: `removeAll()` keeps the memory, so
/// steady-state appends never allocate. A plain struct over manually managed memory (no
/// class, so no reference counting or exclusivity checks in the hot loops): the owner
/// calls `deallocate()` exactly once. Elements must be trivial types.
struct GrowableBuffer<Element> {
    private(set) var base: UnsafeMutablePointer<Element>
    private(set) var capacity: Int
    private(set) var count = 0

    init(capacity: Int) {
        self.capacity = max(1, capacity)
        base = .allocate(capacity: self.capacity)
    }

    func deallocate() { base.deallocate() }

    var isFull: Bool { count == capacity }

    /// The elements held, for in-place work.
    var elements: UnsafeMutableBufferPointer<Element> { UnsafeMutableBufferPointer(start: base, count: count) }

    @inline(__always)
    mutating func append(_ element: Element) {
        if count == capacity { grow() }
        base[count] = element
        count += 1
    }

    /// Keeps the first `newCount` elements.
    mutating func truncate(to newCount: Int) {
        precondition(newCount <= count)
        count = newCount
    }

    mutating func removeAll() { count = 0 }

    /// Doubles the capacity, keeping the elements.
    mutating func grow() {
        let bigger = UnsafeMutablePointer<Element>.allocate(capacity: 2 * capacity)
        bigger.update(from: base, count: count)
        base.deallocate()
        base = bigger
        capacity *= 2
    }
}
