/// Sorting many scores (every pixel of every test image: 100 × 50 176 and more) by descending
/// value in linear time, each carrying a 32-bit tag (a label or a ground-truth region id).
///
/// A score is turned into a 32-bit key whose unsigned order is the reverse of the float order
/// (−0 and +0 are one value, as in NumPy comparisons); key and tag are packed into one `UInt64`
/// (key in the high half) and sorted by an LSD radix sort over the key bits. Equal scores have
/// equal keys, so ties are runs of equal high halves.
enum ScoreOrder {
    /// The descending-order key of `value` (not NaN).
    @inline(__always)
    static func key(_ value: Float) -> UInt32 {
        let bits = (value == 0 ? Float(0) : value).bitPattern
        let ascending = bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
        return ~ascending
    }

    /// The score of a descending-order key.
    static func value(_ key: UInt32) -> Float {
        let ascending = ~key
        return Float(bitPattern: ascending & 0x8000_0000 != 0 ? ascending & 0x7FFF_FFFF : ~ascending)
    }

    /// `scores` (none NaN) with their `tags`, packed and sorted by descending score.
    /// Within a tie the order is the input order.
    static func sortedDescending(_ scores: [Float], tags: [UInt32]) -> [UInt64] {
        precondition(scores.count == tags.count, "\(scores.count) scores but \(tags.count) tags")
        precondition(scores.count < Int(UInt32.max), "too many scores")
        var items = [UInt64](unsafeUninitializedCapacity: scores.count) { buffer, initialized in
            scores.withUnsafeBufferPointer { s in
                tags.withUnsafeBufferPointer { t in
                    for i in 0..<s.count {
                        precondition(!s[i].isNaN, "NaN score at index \(i)")
                        buffer[i] = UInt64(key(s[i])) << 32 | UInt64(t[i])
                    }
                }
            }
            initialized = scores.count
        }
        radixSortHighHalf(&items)
        return items
    }

    /// Stable LSD radix sort of `items` by their high 32 bits: digits of 11, 11 and 10 bits;
    /// a digit on which all items agree is skipped.
    static func radixSortHighHalf(_ items: inout [UInt64]) {
        let n = items.count
        guard n > 1 else { return }
        let shifts: [UInt64] = [32, 43, 54], buckets = 2048
        var counts = [Int](repeating: 0, count: shifts.count * buckets)
        items.withUnsafeBufferPointer { src in
            counts.withUnsafeMutableBufferPointer { c in
                for v in src {
                    c[Int((v >> 32) & 0x7FF)] += 1
                    c[buckets + Int((v >> 43) & 0x7FF)] += 1
                    c[2 * buckets + Int(v >> 54)] += 1
                }
            }
        }
        var scratch = [UInt64](repeating: 0, count: n)
        for (d, shift) in shifts.enumerated() {
            let digitCounts = counts[(d * buckets)..<((d + 1) * buckets)]
            if digitCounts.contains(n) { continue }
            var offsets = [Int](repeating: 0, count: buckets)
            var running = 0
            for (b, count) in digitCounts.enumerated() { offsets[b] = running; running += count }
            items.withUnsafeBufferPointer { src in
                scratch.withUnsafeMutableBufferPointer { dst in
                    offsets.withUnsafeMutableBufferPointer { off in
                        for v in src {
                            let b = Int((v >> shift) & 0x7FF)
                            dst[off[b]] = v
                            off[b] += 1
                        }
                    }
                }
            }
            swap(&items, &scratch)
        }
    }
}
