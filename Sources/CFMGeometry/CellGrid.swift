import CFMTensor

/// A voxel hash of points for fixed-radius neighbour searches: cubic cells of side `side`,
/// each holding its points in ascending id order, and for every occupied cell the occupied
/// cells within `reach` cells along each axis.
///
/// The points are the candidates among the ids `0 ..< slots` of a [slots, 3] Float32 buffer:
/// every id of a point list, or the foreground pixels (all three coordinates non-zero) of an
/// organized cloud, so the cloud is hashed in place without gathering its points first.
/// The grid holds no coordinates, only `order` (4 bytes per point); it reads them from the
/// buffer it was built on, which must outlive it.
///
/// Two points closer than `reach · side` lie in cells at most `reach` apart along every axis,
/// so a search that visits a cell's `neighbours` sees every such pair. Cell coordinates are
/// ⌊coordinate / side⌋ (Float64) clamped to ±2¹⁹ (clamping never moves two cells further
/// apart, so the guarantee holds for huge coordinates too); a non-finite coordinate goes to
/// cell 0. A cell none of whose points was clamped or non-finite is **bounded**: its points
/// lie in one cube of side `side` (up to a relative 2⁻³³ of rounding), so with `side` = eps / 2
/// any two of them are less than √3 / 2 · eps apart — neighbours without comparing.
///
/// Cost: one pass over the `slots` ids (three Float64 divisions per candidate; the floors and
/// a hash probe only where the cell changes along the scan), in parallel over contiguous id ranges whose
/// per-range cells are merged afterwards (so the grid does not depend on the worker count
/// beyond its cell numbering), then (2·reach + 1)³ hash probes per occupied cell, in parallel.
/// Memory: `order` plus a transient 4 bytes per point while building, and O(cells).
struct CellGrid {
    /// Number of occupied cells.
    let cellCount: Int
    /// Each cell's integer coordinates.
    let keys: [SIMD3<Int32>]
    /// Per cell: all its points lie inside its cube (none clamped or non-finite).
    let isBounded: [Bool]
    /// The points of cell c are `order[start[c] ..< start[c + 1]]`, ascending ids.
    let start: [Int32]
    /// Position → point id, grouped by cell. Everything downstream works on positions.
    let order: [Int32]
    /// Cell c's neighbours (itself first, then the other occupied cells within `reach` per
    /// axis, nearest offsets first): `neighbours[neighbourStart[c] ..< neighbourStart[c + 1]]`.
    let neighbourStart: [Int32]
    let neighbours: [Int32]
    /// The [slots, 3] coordinates the grid was built on.
    let coordinates: UnsafePointer<Float>

    /// Hashes the candidates among ids `0 ..< slots` of `coordinates` ([slots, 3], metres):
    /// all of them, or with `foregroundOnly` those whose three coordinates are non-zero.
    /// Ids must fit Int32.
    init(coordinates: UnsafePointer<Float>, slots: Int, foregroundOnly: Bool, side: Double, reach: Int) {
        precondition(slots <= Int(Int32.max), "\(slots) points exceed the grid's Int32 ids")
        self.coordinates = coordinates
        let limit = Double(1 << 19)
        /// ⌊scaled⌋ clamped to ±2¹⁹, 0 for NaN; clears `bounded` unless strictly inside.
        @inline(__always) func cellCoordinate(_ scaled: Double, _ bounded: inout Bool) -> Int32 {
            let c = scaled.rounded(.down)
            if c.isNaN {
                bounded = false
                return 0
            }
            if !(c > -limit && c < limit) { bounded = false }
            return Int32(max(-limit, min(limit, c)))
        }
        @inline(__always) func isCandidate(_ id: Int) -> Bool {
            !foregroundOnly || (coordinates[3 * id] != 0 && coordinates[3 * id + 1] != 0 && coordinates[3 * id + 2] != 0)
        }

        // 1. Per id range (worker): its cells in order of first appearance, their point counts
        //    and boundedness, and each candidate's local cell. Neighbouring points of a row-major
        //    scan share a cell, so the last key is remembered.
        let minimumChunk = 1 << 14
        var chunks = (0..<cpuCount).map { _ in ChunkCells(capacity: 0) }
        chunks.withUnsafeMutableBufferPointer { chunks in
            parallelWorkers(slots, minimumChunk: minimumChunk) { worker, ids in
                var local = ChunkCells(capacity: ids.count)
                // The current run of points in one cell: its key, as Float64 cell corner when
                // bounded (NaN otherwise), local id and length. A point whose scaled coordinates
                // lie in [corner, corner + 1) on every axis has the same key without a floor.
                var corner = SIMD3<Double>(repeating: .nan), cell = 0, run: Int32 = 0
                for id in ids where isCandidate(id) {
                    let scaled = SIMD3(Double(coordinates[3 * id]), Double(coordinates[3 * id + 1]),
                                       Double(coordinates[3 * id + 2])) / side
                    if !(all(scaled .>= corner) && all(scaled .< corner + 1)) {
                        if run > 0 { local.counts[cell] += run }
                        var bounded = true
                        let key = SIMD3(cellCoordinate(scaled.x, &bounded), cellCoordinate(scaled.y, &bounded),
                                        cellCoordinate(scaled.z, &bounded))
                        cell = local.cell(key)
                        run = 0
                        if bounded {
                            corner = SIMD3(Double(key.x), Double(key.y), Double(key.z))
                        } else {
                            local.bounded[cell] = false
                            corner = SIMD3(repeating: .nan)
                        }
                    }
                    run += 1
                    local.cellOfPoint[local.pointCount] = Int32(cell)
                    local.pointCount += 1
                }
                if run > 0 { local.counts[cell] += run }
                chunks[worker].cellOfPoint.deallocate()
                chunks[worker] = local
            }
        }
        defer { for chunk in chunks { chunk.cellOfPoint.deallocate() } }

        // 2. Merge the ranges' cells (in range order) and lay the cells out: cell c's points from
        //    range 0 first, then range 1, …, so each cell's ids stay ascending.
        var lookup = CellTable(capacityFor: max(16, chunks.reduce(0) { $0 + $1.keys.count }))
        var keys: [SIMD3<Int32>] = [], isBounded: [Bool] = [], counts: [Int32] = []
        var globalCell = [[Int32]](repeating: [], count: chunks.count)
        for (w, chunk) in chunks.enumerated() {
            globalCell[w] = chunk.keys.indices.map { c in
                let g: Int32
                if let known = lookup.cell(chunk.keys[c]) {
                    g = known
                } else {
                    g = Int32(keys.count)
                    lookup.insert(chunk.keys[c], cell: g)
                    keys.append(chunk.keys[c])
                    isBounded.append(true)
                    counts.append(0)
                }
                isBounded[Int(g)] = isBounded[Int(g)] && chunk.bounded[c]
                counts[Int(g)] += chunk.counts[c]
                return g
            }
        }
        let cellCount = keys.count
        self.cellCount = cellCount
        var start = [Int32](repeating: 0, count: cellCount + 1)
        for c in 0..<cellCount { start[c + 1] = start[c] + counts[c] }
        var cursor = Array(start.dropLast())
        var nextSlot = chunks.indices.map { w in
            globalCell[w].indices.map { c in
                let g = Int(globalCell[w][c])
                defer { cursor[g] += chunks[w].counts[c] }
                return cursor[g]
            }
        }
        // 3. Scatter the ids to their positions, per range again.
        let pointCount = Int(start[cellCount])
        var order = [Int32](repeating: 0, count: pointCount)
        order.withUnsafeMutableBufferPointer { order in
            nextSlot.withUnsafeMutableBufferPointer { nextSlot in
                parallelWorkers(slots, minimumChunk: minimumChunk) { worker, ids in
                    let cellOfPoint = chunks[worker].cellOfPoint
                    nextSlot[worker].withUnsafeMutableBufferPointer { next in
                        var j = 0
                        for id in ids where isCandidate(id) {
                            let c = Int(cellOfPoint[j])
                            j += 1
                            order[Int(next[c])] = Int32(id)
                            next[c] += 1
                        }
                    }
                }
            }
        }
        self.keys = keys
        self.isBounded = isBounded
        self.start = start
        self.order = order

        // 4. Neighbour lists, per range of cells into per-worker buffers, concatenated in order.
        // Nearest offsets first (a search that stops early stops sooner), ties in scan order.
        var offsets: [SIMD3<Int32>] = []
        for dz in -reach...reach {
            for dy in -reach...reach {
                for dx in -reach...reach { offsets.append(SIMD3(Int32(dx), Int32(dy), Int32(dz))) }
            }
        }
        offsets = offsets.enumerated().sorted {
            let a = ($0.element &* $0.element).wrappedSum(), b = ($1.element &* $1.element).wrappedSum()
            return a < b || (a == b && $0.offset < $1.offset)
        }.map(\.element)
        var neighbourCount = [Int32](repeating: 0, count: cellCount)
        var found = (0..<cpuCount).map { _ in GrowableBuffer<Int32>(capacity: 1024) }
        neighbourCount.withUnsafeMutableBufferPointer { neighbourCount in
            found.withUnsafeMutableBufferPointer { found in
                parallelWorkers(cellCount, minimumChunk: 256) { worker, cells in
                    for cell in cells {
                        let before = found[worker].count
                        lookup.cells(around: keys[cell], offsets: offsets, into: &found[worker])
                        neighbourCount[cell] = Int32(found[worker].count - before)
                    }
                }
            }
        }
        var neighbourStart = [Int32](repeating: 0, count: cellCount + 1)
        for c in 0..<cellCount { neighbourStart[c + 1] = neighbourStart[c] + neighbourCount[c] }
        var neighbours: [Int32] = []
        neighbours.reserveCapacity(Int(neighbourStart[cellCount]))
        for buffer in found {
            neighbours.append(contentsOf: buffer.elements)
            buffer.deallocate()
        }
        self.neighbourStart = neighbourStart
        self.neighbours = neighbours
    }

    /// Number of points hashed.
    var pointCount: Int { order.count }

    /// The points of cell `c` as a range of positions into `order`.
    @inline(__always)
    func positions(_ c: Int) -> Range<Int> { Int(start[c])..<Int(start[c + 1]) }

    /// The coordinates of the point at `position`, in Float64 (exact).
    @inline(__always)
    func point(_ position: Int) -> SIMD3<Double> {
        let p = coordinates + 3 * Int(order[position])
        return SIMD3(Double(p[0]), Double(p[1]), Double(p[2]))
    }

    /// The largest axis distance, in cells, between cells `a` and `b` (1 = touching).
    func ring(_ a: Int, _ b: Int) -> Int32 {
        let d = keys[a] &- keys[b]
        return max(abs(d.x), abs(d.y), abs(d.z))
    }

    /// The neighbour cells of `c`, itself first.
    func neighbourCells(_ c: Int) -> ArraySlice<Int32> { neighbours[Int(neighbourStart[c])..<Int(neighbourStart[c + 1])] }
}

/// The cells one id range of a `CellGrid` build falls in: local cell ids by first
/// appearance, their point counts and boundedness, and per candidate its local cell.
private struct ChunkCells {
    var lookup = CellTable(capacityFor: 64)
    var keys: [SIMD3<Int32>] = []
    var counts: [Int32] = []
    var bounded: [Bool] = []
    /// Capacity: the range's id count (pages only touched for candidates); owned by the build.
    var cellOfPoint: UnsafeMutablePointer<Int32>
    var pointCount = 0

    init(capacity: Int) { cellOfPoint = .allocate(capacity: max(1, capacity)) }

    /// The local id of cell `key`, added when new.
    @inline(__always)
    mutating func cell(_ key: SIMD3<Int32>) -> Int {
        if let known = lookup.cell(key) { return Int(known) }
        lookup.insert(key, cell: Int32(keys.count))
        keys.append(key)
        counts.append(0)
        bounded.append(true)
        return keys.count - 1
    }
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
        slots.withUnsafeBufferPointer { slots in
            var i = Int(truncatingIfNeeded: (packed &* 0x9E37_79B9_7F4A_7C15) >> 32) & (slots.count - 1)
            while slots[i] != Self.empty && slots[i] != packed { i = (i + 1) & (slots.count - 1) }
            return i
        }
    }

    /// Appends the cell ids of the occupied cells among `key + offsets`, in offset order.
    func cells(around key: SIMD3<Int32>, offsets: [SIMD3<Int32>], into found: inout GrowableBuffer<Int32>) {
        slots.withUnsafeBufferPointer { slots in
            cells.withUnsafeBufferPointer { cells in
                let mask = slots.count - 1
                for offset in offsets {
                    let packed = Self.pack(key &+ offset)
                    var i = Int(truncatingIfNeeded: (packed &* 0x9E37_79B9_7F4A_7C15) >> 32) & mask
                    while slots[i] != Self.empty && slots[i] != packed { i = (i + 1) & mask }
                    if slots[i] != Self.empty { found.append(cells[i]) }
                }
            }
        }
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
