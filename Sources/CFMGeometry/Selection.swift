/// In-place selection and sorting on buffers, allocation-free (unlike the standard
/// library's sort), for the per-query loops of the neighbour search.
extension UnsafeMutableBufferPointer where Element: Comparable {
    /// Rearranges the elements so that position `nth` holds the element sorted order would
    /// put there, with no greater element before it and no smaller one after it
    /// (quickselect).
    mutating func partition(aroundNth nth: Int) {
        precondition(indices.contains(nth), "nth \(nth) outside 0..<\(count)")
        var low = 0, high = count - 1
        while high > low {
            let (j, i) = hoarePartition(low, high)
            if nth <= j {
                high = j
            } else if nth >= i {
                low = i
            } else {
                return
            }
        }
    }

    /// Puts the `prefix` smallest elements, sorted ascending, at the front (partial
    /// quicksort: only the parts that overlap the prefix are sorted further; short ranges
    /// by insertion).
    mutating func sortSmallest(_ prefix: Int) {
        precondition(prefix <= count, "prefix \(prefix) longer than \(count)")
        func sort(_ low: Int, _ high: Int) {
            if high - low < 16 {
                for i in Swift.stride(from: low + 1, through: high, by: 1) {
                    let element = self[i]
                    var j = i
                    while j > low && element < self[j - 1] {
                        self[j] = self[j - 1]
                        j -= 1
                    }
                    self[j] = element
                }
                return
            }
            let (j, i) = hoarePartition(low, high)
            sort(low, j)
            if i < prefix { sort(i, high) }
        }
        if prefix > 0 { sort(0, count - 1) }
    }

    /// Hoare partition of `low...high` (at least 2 elements) around the median of the first,
    /// middle and last: afterwards `low...j` ≤ pivot, `j+1..<i` = pivot, `i...high` ≥ pivot.
    private mutating func hoarePartition(_ low: Int, _ high: Int) -> (j: Int, i: Int) {
        let mid = low + (high - low) / 2
        if self[mid] < self[low] { swapAt(mid, low) }
        if self[high] < self[low] { swapAt(high, low) }
        if self[high] < self[mid] { swapAt(high, mid) }
        let pivot = self[mid]
        var i = low, j = high
        while i <= j {
            while self[i] < pivot { i += 1 }
            while pivot < self[j] { j -= 1 }
            if i <= j {
                swapAt(i, j)
                i += 1
                j -= 1
            }
        }
        return (j, i)
    }
}
