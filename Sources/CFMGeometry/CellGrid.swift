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
/// Cost: one pass over the `slots` ids, in parallel over contiguous id ranges: a candidate
/// within the coordinate limits of the current (or the previous) cell joins it after six
/// Float32 comparisons; only where the cell changes along the scan is it divided (Float64),
/// floored and looked up. The candidates are recorded as runs of consecutive ids in one cell, with each cell's
/// bounding box. The ranges' cells are merged (so the grid does not depend on the worker count
/// beyond its cell numbering), the runs scattered into cell order without reading a coordinate
/// again, then (2·reach + 1)³ look-ups per occupied cell, in parallel: fixed index offsets into
/// a dense table over the cells' box when it has at most 2 entries per point (`DenseCellTable`),
/// hash probes otherwise.
/// Memory: `order`, a transient 12 bytes per run (a run per point at worst; on a sensor's
/// surfaces runs are about ten points long), the dense table (≤ 8 bytes per point) and O(cells).
struct CellGrid {
    /// Number of occupied cells.
    let cellCount: Int
    /// Each cell's integer coordinates.
    let keys: [SIMD3<Int32>]
    /// Per cell: all its points lie inside its cube (none clamped or non-finite).
    let isBounded: [Bool]
    /// Per bounded cell: the lowest and highest coordinates of its points (metres; Float32
    /// values, exact in Float64). Undefined for the other cells.
    let boxLow: [SIMD3<Double>], boxHigh: [SIMD3<Double>]
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
        // 1. Per id range (worker): its cells in order of first appearance with their point
        //    counts, boundedness and boxes, and its candidates as runs.
        let minimumChunk = 1 << 14
        var chunks = (0..<cpuCount).map { _ in ChunkCells() }
        chunks.withUnsafeMutableBufferPointer { chunks in
            parallelWorkers(slots, minimumChunk: minimumChunk) { worker, ids in
                var local = ChunkCells()
                local.scan(coordinates, ids: ids, foregroundOnly: foregroundOnly, side: side)
                chunks[worker].runs.deallocate()
                chunks[worker] = local
            }
        }
        defer { for chunk in chunks { chunk.runs.deallocate() } }

        // 2. Merge the ranges' cells (in range order) and lay the cells out: cell c's points from
        //    range 0 first, then range 1, …, so each cell's ids stay ascending.
        var lookup = CellTable(capacityFor: max(16, chunks.reduce(0) { $0 + $1.keys.count }))
        var keys: [SIMD3<Int32>] = [], isBounded: [Bool] = [], counts: [Int32] = []
        var low: [SIMD3<Float>] = [], high: [SIMD3<Float>] = []
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
                    low.append(SIMD3(repeating: .infinity))
                    high.append(SIMD3(repeating: -.infinity))
                }
                let i = Int(g)
                let local = chunk.stats[c]
                isBounded[i] = isBounded[i] && local.bounded
                counts[i] += local.count
                low[i] = pointwiseMin(low[i], local.low)
                high[i] = pointwiseMax(high[i], local.high)
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
                defer { cursor[g] += chunks[w].stats[c].count }
                return cursor[g]
            }
        }
        // 3. Scatter the runs' ids to their positions, per range again.
        let pointCount = Int(start[cellCount])
        var order = [Int32](repeating: 0, count: pointCount)
        order.withUnsafeMutableBufferPointer { order in
            nextSlot.withUnsafeMutableBufferPointer { nextSlot in
                parallelChunks(chunks.count, minimumChunk: 1) { workers in
                    for w in workers {
                        nextSlot[w].withUnsafeMutableBufferPointer { next in
                            for run in chunks[w].runs.elements {
                                let slot = Int(next[Int(run.cell)])
                                for k in 0..<Int(run.count) { order[slot + k] = run.first + Int32(k) }
                                next[Int(run.cell)] += run.count
                            }
                        }
                    }
                }
            }
        }
        self.keys = keys
        self.isBounded = isBounded
        self.boxLow = low.map { SIMD3<Double>($0) }
        self.boxHigh = high.map { SIMD3<Double>($0) }
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
        // A dense table over the cells' box when it is at most a few entries per point (a
        // sensor's surfaces), else the hash table.
        let dense = DenseCellTable(keys: keys, reach: reach, offsets: offsets, capacity: max(1 << 16, 2 * pointCount))
        var neighbourCount = [Int32](repeating: 0, count: cellCount)
        var found = (0..<cpuCount).map { _ in GrowableBuffer<Int32>(capacity: 1024) }
        neighbourCount.withUnsafeMutableBufferPointer { neighbourCount in
            found.withUnsafeMutableBufferPointer { found in
                parallelWorkers(cellCount, minimumChunk: 256) { worker, cells in
                    for cell in cells {
                        let before = found[worker].count
                        if let dense {
                            dense.cells(around: keys[cell], into: &found[worker])
                        } else {
                            lookup.cells(around: keys[cell], offsets: offsets, into: &found[worker])
                        }
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

    /// The smallest finite Float f with Double(f) / `side` ≥ `bound` (+∞ when there is none;
    /// −greatestFiniteMagnitude when every finite Float qualifies). The rounded division is
    /// monotone in f, so the Floats qualifying are exactly those ≥ the result. Found by a few
    /// steps from Float(bound · side), else by bisection over the Floats in order.
    static func smallestFloat(scaledAtLeast bound: Double, side: Double) -> Float {
        func reaches(_ f: Float) -> Bool { Double(f) / side >= bound }
        var f = Float(bound * side)
        if f.isFinite {
            for _ in 0..<4 {
                if reaches(f) {
                    if !reaches(f.nextDown) { return f }
                    f = f.nextDown
                } else {
                    if reaches(f.nextUp) { return f.nextUp }
                    f = f.nextUp
                }
            }
        }
        // Floats in order ↔ Int32: the bit pattern for f ≥ 0, its negation's negated for f < 0.
        func rank(_ f: Float) -> Int32 {
            let bits = Int32(bitPattern: f.bitPattern)
            return bits >= 0 ? bits : Int32.min &- bits
        }
        func float(_ rank: Int32) -> Float { Float(bitPattern: UInt32(bitPattern: rank >= 0 ? rank : Int32.min &- rank)) }
        guard reaches(.greatestFiniteMagnitude) else { return .infinity }
        if reaches(-.greatestFiniteMagnitude) { return -.greatestFiniteMagnitude }
        var below = rank(-.greatestFiniteMagnitude), above = rank(.greatestFiniteMagnitude)
        while above - below > 1 {
            let middle = below + (above - below) / 2
            if reaches(float(middle)) { above = middle } else { below = middle }
        }
        return float(above)
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

/// Candidates `first ..< first + count` (consecutive ids), all in local cell `cell`.
private struct CellRun {
    var cell: Int32
    var first: Int32
    var count: Int32
}

/// What one id range of a `CellGrid` build found in one cell: its points, whether all were
/// bounded, and their box.
private struct LocalCellStats {
    var count: Int32 = 0
    var bounded = true
    var low = SIMD3<Float>(repeating: .infinity), high = SIMD3<Float>(repeating: -.infinity)

    /// Adds `count` points spanning `low … high`.
    @inline(__always)
    mutating func add(_ count: Int32, _ low: SIMD3<Float>, _ high: SIMD3<Float>) {
        self.count += count
        self.low = SIMD3(min(self.low.x, low.x), min(self.low.y, low.y), min(self.low.z, low.z))
        self.high = SIMD3(max(self.high.x, high.x), max(self.high.y, high.y), max(self.high.z, high.z))
    }
}

/// A local cell of a `CellGrid` build with its coordinate limits (`ChunkCells.lowerLimit`).
private struct CellLimits {
    var cell: Int32
    var lowerX: Float, lowerY: Float, lowerZ: Float
    var upperX: Float, upperY: Float, upperZ: Float

    init(cell: Int32, lower: SIMD3<Float>, upper: SIMD3<Float>) {
        self.cell = cell
        (lowerX, lowerY, lowerZ) = (lower.x, lower.y, lower.z)
        (upperX, upperY, upperZ) = (upper.x, upper.y, upper.z)
    }

    /// Whether (x, y, z) lies in the cell: lower ≤ p < upper on every axis (never for NaN).
    @inline(__always)
    func contains(_ x: Float, _ y: Float, _ z: Float) -> Bool {
        x >= lowerX && x < upperX && y >= lowerY && y < upperY && z >= lowerZ && z < upperZ
    }
}
/// The cells one id range of a `CellGrid` build falls in: local cell ids by first
/// appearance, their point counts, boundedness and boxes, and the range's candidates as runs.
private struct ChunkCells {
    var lookup = CellTable(capacityFor: 64)
    var keys: [SIMD3<Int32>] = []
    /// Per cell: point count, boundedness and box (one array: one access per run).
    var stats: [LocalCellStats] = []
    /// Per cell: the coordinates p with ⌊p / side⌋ = key (Float64 division) are exactly those
    /// with `lowerLimit` ≤ p < `upperLimit` on every axis (+∞ and −∞ for a key on the clamp).
    var lowerLimit: [SIMD3<Float>] = [], upperLimit: [SIMD3<Float>] = []
    /// Owned by the build, which deallocates it.
    var runs = GrowableBuffer<CellRun>(capacity: 1024)

    /// Hashes the candidates among `ids` of `coordinates` (see `CellGrid.init`). Neighbouring
    /// points of a row-major scan share a cell, so the current cell and the one before are
    /// remembered with their coordinate limits: a point within them has its key without a
    /// division. Only a point outside both is divided, floored and looked up.
    mutating func scan(_ coordinates: UnsafePointer<Float>, ids: Range<Int>, foregroundOnly: Bool, side: Double) {
        var current = CellLimits(cell: -1, lower: SIMD3(repeating: .infinity), upper: SIMD3(repeating: -.infinity))
        var previous = current
        var id = ids.lowerBound
        while id < ids.upperBound {
            let q = coordinates + 3 &* id
            let x = q[0], y = q[1], z = q[2]
            if foregroundOnly && (x == 0 || y == 0 || z == 0) {
                id &+= 1
                continue
            }
            if !current.contains(x, y, z) {
                if previous.contains(x, y, z) {
                    swap(&previous, &current)
                } else {
                    let scaled = SIMD3(Double(x), Double(y), Double(z)) / side
                    var bounded = true
                    let key = SIMD3(Self.cellCoordinate(scaled.x, &bounded), Self.cellCoordinate(scaled.y, &bounded),
                                    Self.cellCoordinate(scaled.z, &bounded))
                    let next = self.cell(key, side: side)
                    if !bounded { stats[Int(next)].bounded = false }
                    if next != current.cell {
                        previous = current
                        current = CellLimits(cell: next, lower: lowerLimit[Int(next)], upper: upperLimit[Int(next)])
                    }
                }
            }
            // A run: this point and the following candidates within the current cell's limits.
            // Scalar code with little state: this loop runs once per point.
            let first = id
            var (lowX, lowY, lowZ, highX, highY, highZ) = (x, y, z, x, y, z)
            id += 1
            while id < ids.upperBound {
                let q = coordinates + 3 &* id
                let x = q[0], y = q[1], z = q[2]
                guard !(foregroundOnly && (x == 0 || y == 0 || z == 0)) && current.contains(x, y, z) else { break }
                lowX = x < lowX ? x : lowX
                lowY = y < lowY ? y : lowY
                lowZ = z < lowZ ? z : lowZ
                highX = x > highX ? x : highX
                highY = y > highY ? y : highY
                highZ = z > highZ ? z : highZ
                id &+= 1
            }
            end(CellRun(cell: current.cell, first: Int32(first), count: Int32(id - first)),
                SIMD3(lowX, lowY, lowZ), SIMD3(highX, highY, highZ))
        }
    }

    /// Records `run`, whose points span the box `low … high`.
    @inline(__always)
    private mutating func end(_ run: CellRun, _ low: SIMD3<Float>, _ high: SIMD3<Float>) {
        guard run.count > 0 else { return }
        runs.append(run)
        stats[Int(run.cell)].add(run.count, low, high)
    }

    /// ⌊scaled⌋ clamped to ±2¹⁹, 0 for NaN; clears `bounded` unless strictly inside.
    @inline(__always)
    private static func cellCoordinate(_ scaled: Double, _ bounded: inout Bool) -> Int32 {
        let c = scaled.rounded(.down)
        if c.isNaN {
            bounded = false
            return 0
        }
        if !(c > -clamp && c < clamp) { bounded = false }
        return Int32(max(-clamp, min(clamp, c)))
    }

    /// Cell coordinates are clamped to ±2¹⁹.
    private static let clamp = Double(1 << 19)

    /// The local id of cell `key`, added when new.
    @inline(__always)
    mutating func cell(_ key: SIMD3<Int32>, side: Double) -> Int32 {
        if let known = lookup.cell(key) { return known }
        lookup.insert(key, cell: Int32(keys.count))
        keys.append(key)
        stats.append(LocalCellStats())
        var lower = SIMD3<Float>(repeating: .infinity), upper = SIMD3<Float>(repeating: -.infinity)
        let k = SIMD3<Double>(Double(key.x), Double(key.y), Double(key.z))
        if all(k .> -Self.clamp .& k .< Self.clamp) {
            for axis in 0..<3 {
                lower[axis] = CellGrid.smallestFloat(scaledAtLeast: k[axis], side: side)
                upper[axis] = CellGrid.smallestFloat(scaledAtLeast: k[axis] + 1, side: side)
            }
        }
        lowerLimit.append(lower)
        upperLimit.append(upper)
        return Int32(keys.count - 1)
    }
}

/// Cell coordinates → cell id through an array over the cells' bounding box widened by
/// `reach` on every side, so the neighbours of a cell are found by adding fixed index offsets
/// (no hashing). Only built when that box has at most `capacity` entries.
struct DenseCellTable {
    private let lowest: SIMD3<Int>
    private let rowLength: Int, sliceLength: Int
    /// Per entry: the cell at those coordinates, or −1.
    private var cells: [Int32]
    /// The index offsets of `offsets`, in their order.
    private let steps: [Int]

    init?(keys: [SIMD3<Int32>], reach: Int, offsets: [SIMD3<Int32>], capacity: Int) {
        guard let first = keys.first else { return nil }
        var low = SIMD3<Int>(truncatingIfNeeded: first), high = low
        for key in keys {
            low = pointwiseMin(low, SIMD3(truncatingIfNeeded: key))
            high = pointwiseMax(high, SIMD3(truncatingIfNeeded: key))
        }
        let extent = high &- low &+ (2 * reach + 1)  // each ≤ 2²⁰ + 2·reach + 1: no overflow below
        guard extent.x * extent.y <= capacity, extent.x * extent.y * extent.z <= capacity else { return nil }
        lowest = low &- reach
        rowLength = extent.x
        sliceLength = extent.x * extent.y
        var cells = [Int32](repeating: -1, count: extent.x * extent.y * extent.z)
        steps = offsets.map { Int($0.x) + Int($0.y) * extent.x + Int($0.z) * extent.x * extent.y }
        for (c, key) in keys.enumerated() { cells[Self.index(key, lowest, rowLength, sliceLength)] = Int32(c) }
        self.cells = cells
    }

    @inline(__always)
    private static func index(_ key: SIMD3<Int32>, _ lowest: SIMD3<Int>, _ rowLength: Int, _ sliceLength: Int) -> Int {
        let k = SIMD3<Int>(truncatingIfNeeded: key) &- lowest
        return k.x + k.y * rowLength + k.z * sliceLength
    }

    /// Appends the ids of the occupied cells among `key + offsets`, in offset order.
    func cells(around key: SIMD3<Int32>, into found: inout GrowableBuffer<Int32>) {
        let centre = Self.index(key, lowest, rowLength, sliceLength)
        cells.withUnsafeBufferPointer { cells in
            for step in steps where cells[centre + step] >= 0 { found.append(cells[centre + step]) }
        }
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
