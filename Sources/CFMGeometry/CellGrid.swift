import CFMTensor

/// A voxel hash of a point list for fixed-radius neighbour searches: cubic cells of side
/// `side`, each holding its points in ascending index order, and for every occupied cell the
/// occupied cells within `reach` cells along each axis.
///
/// Two points closer than `reach · side` lie in cells at most `reach` apart along every axis,
/// so a search that visits a cell's `neighbours` sees every such pair. Cell coordinates are
/// ⌊coordinate / side⌋ clamped to ±2¹⁹ (clamping never moves two cells further apart, so
/// the guarantee holds for huge coordinates too); a non-finite coordinate goes to cell 0.
/// Cells are found through `CellTable`, an open-addressing hash of the packed coordinates.
struct CellGrid {
    /// Number of occupied cells.
    let cellCount: Int
    /// Each cell's integer coordinates.
    let keys: [SIMD3<Int32>]
    /// The points of cell c are `order[start[c]..<start[c + 1]]`, ascending.
    let start: [Int32]
    /// Point indices grouped by cell.
    let order: [Int32]
    /// Coordinates in `order`'s order, as Float64: [order.count · 3].
    let coordinates: [Double]
    /// Cell c's neighbours (itself first, then the other occupied cells within `reach` per
    /// axis, by offset): `neighbours[neighbourStart[c]..<neighbourStart[c + 1]]`.
    let neighbourStart: [Int32]
    let neighbours: [Int32]

    /// Hashes `count` points stored [count, 3] (metres) into cells of side `side`.
    init(points: UnsafeBufferPointer<Float>, count: Int, side: Double, reach: Int) {
        let limit = Double(1 << 19)
        func cellCoordinate(_ value: Float) -> Int32 {
            let c = (Double(value) / side).rounded(.down)
            return c.isNaN ? 0 : Int32(max(-limit, min(limit, c)))
        }
        // Cell ids in order of first appearance; neighbouring points of a row-major scan share
        // a cell, so the last key is remembered.
        var lookup = CellTable(capacityFor: max(16, count / 16))
        var keys: [SIMD3<Int32>] = [], cellOfPoint = [Int32](repeating: 0, count: count)
        var lastKey = SIMD3<Int32>(repeating: .max), lastCell: Int32 = -1
        for i in 0..<count {
            let key = SIMD3(cellCoordinate(points[3 * i]), cellCoordinate(points[3 * i + 1]), cellCoordinate(points[3 * i + 2]))
            if key != lastKey {
                if let known = lookup.cell(key) {
                    lastCell = known
                } else {
                    lastCell = Int32(keys.count)
                    lookup.insert(key, cell: lastCell)
                    keys.append(key)
                }
                lastKey = key
            }
            cellOfPoint[i] = lastCell
        }
        cellCount = keys.count
        self.keys = keys
        // Counting sort by cell keeps each cell's points ascending.
        var start = [Int32](repeating: 0, count: cellCount + 1)
        for c in cellOfPoint { start[Int(c) + 1] += 1 }
        for c in 0..<cellCount { start[c + 1] += start[c] }
        var next = start, order = [Int32](repeating: 0, count: count)
        var coordinates = [Double](repeating: 0, count: 3 * count)
        for i in 0..<count {
            let c = Int(cellOfPoint[i]), slot = Int(next[c])
            next[c] += 1
            order[slot] = Int32(i)
            for a in 0..<3 { coordinates[3 * slot + a] = Double(points[3 * i + a]) }
        }
        self.start = start
        self.order = order
        self.coordinates = coordinates

        var offsets = [SIMD3<Int32>(0, 0, 0)]
        for dz in -reach...reach {
            for dy in -reach...reach {
                for dx in -reach...reach where dx != 0 || dy != 0 || dz != 0 {
                    offsets.append(SIMD3(Int32(dx), Int32(dy), Int32(dz)))
                }
            }
        }
        var neighbourStart: [Int32] = [0], neighbours: [Int32] = []
        for key in keys {
            for offset in offsets {
                if let d = lookup.cell(key &+ offset) { neighbours.append(d) }
            }
            neighbourStart.append(Int32(neighbours.count))
        }
        self.neighbourStart = neighbourStart
        self.neighbours = neighbours
    }

    /// The points of cell `c` as a range of positions into `order` / `coordinates`.
    func positions(_ c: Int) -> Range<Int> { Int(start[c])..<Int(start[c + 1]) }

    /// The largest axis distance, in cells, between cells `a` and `b` (1 = touching).
    func ring(_ a: Int, _ b: Int) -> Int32 {
        let d = keys[a] &- keys[b]
        return max(abs(d.x), abs(d.y), abs(d.z))
    }

    /// The neighbour cells of `c`, itself first.
    func neighbourCells(_ c: Int) -> ArraySlice<Int32> { neighbours[Int(neighbourStart[c])..<Int(neighbourStart[c + 1])] }
}

/// Cell coordinates (each within ±(2²⁰ − 1)) → cell id, open addressing with linear probing
/// on a multiplicative hash of the coordinates packed into 21 bits each. Grows at half full.
struct CellTable {
    private var slots: [UInt64]
    private var cells: [Int32]
    private var used = 0
    private static let empty = UInt64.max

    init(capacityFor count: Int) {
        var capacity = 16
        while capacity < 2 * count { capacity *= 2 }
        slots = [UInt64](repeating: Self.empty, count: capacity)
        cells = [Int32](repeating: -1, count: capacity)
    }

    private static func pack(_ key: SIMD3<Int32>) -> UInt64 {
        let bias = Int32(1 << 20)
        return UInt64(UInt32(key.x &+ bias)) | UInt64(UInt32(key.y &+ bias)) << 21 | UInt64(UInt32(key.z &+ bias)) << 42
    }

    private func slot(_ packed: UInt64) -> Int {
        var i = Int(truncatingIfNeeded: (packed &* 0x9E37_79B9_7F4A_7C15) >> 32) & (slots.count - 1)
        while slots[i] != Self.empty && slots[i] != packed { i = (i + 1) & (slots.count - 1) }
        return i
    }

    func cell(_ key: SIMD3<Int32>) -> Int32? {
        let i = slot(Self.pack(key))
        return slots[i] == Self.empty ? nil : cells[i]
    }

    mutating func insert(_ key: SIMD3<Int32>, cell: Int32) {
        if 2 * (used + 1) > slots.count {
            let old = zip(slots, cells).filter { $0.0 != Self.empty }
            slots = [UInt64](repeating: Self.empty, count: 2 * slots.count)
            cells = [Int32](repeating: -1, count: slots.count)
            for (packed, c) in old {
                let i = slot(packed)
                slots[i] = packed
                cells[i] = c
            }
        }
        let packed = Self.pack(key), i = slot(packed)
        if slots[i] == Self.empty { used += 1 }
        slots[i] = packed
        cells[i] = cell
    }
}
