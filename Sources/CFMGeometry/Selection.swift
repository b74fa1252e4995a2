/// In-place selection and sorting on buffers, allocation-free (unlike the standard
/// library's sort), for the per-query loops of the neighbour search.
extension UnsafeMutableBufferPointer where Element: Comparable {
    /// Rearranges the elements so that position `nth` holds the element sorted order would
    /// put there, with no greater element before it and no smaller one after it
    /// (quickselect, median-of-three pivots).
    mutating func partition(aroundNth nth: Int) {
        precondition(indices.contains(nth), "nth \(nth) outside 0..<\(count)")
        var low = 0, high = count - 1
        while high > low {
            // Median of three to the middle, then a Hoare partition around its value.
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
            if nth <= j {
                high = j
            } else if nth >= i {
                low = i
            } else {
                return
            }
        }
    }

    /// Sorts the first `prefix` elements ascending (heapsort).
    mutating func sortPrefix(_ prefix: Int) {
        precondition(prefix <= count, "prefix \(prefix) longer than \(count)")
        func siftDown(_ start: Int, _ end: Int) {
            var root = start
            while true {
                var child = 2 * root + 1
                if child >= end { return }
                if child + 1 < end && self[child] < self[child + 1] { child += 1 }
                if !(self[root] < self[child]) { return }
                swapAt(root, child)
                root = child
            }
        }
        for start in stride(from: prefix / 2 - 1, through: 0, by: -1) { siftDown(start, prefix) }
        for end in stride(from: prefix - 1, to: 0, by: -1) {
            swapAt(0, end)
            siftDown(0, end)
        }
    }
}
