import CFMTensor

/// How background removal keeps the part once the support plane is gone.
public enum ClusterCleaning: String, CaseIterable, Sendable, Codable {
    /// DBSCAN of the remaining points (eps = `clusterDistance`, `clusterMinPoints`), keeping
    /// the largest group, exactly as the official preprocessing does with Open3D's
    /// `cluster_dbscan` (`DensityClusters`). The default.
    case dbscan
    /// 8-neighbour pixels linked when their points are ≤ `clusterDistance` apart; the largest
    /// connected component is kept. Cheaper, but bound to the pixel grid: two surfaces that
    /// touch in 3D without sharing a pixel edge are separate.
    case pixelNeighbours = "pixel_neighbours"
}

/// DBSCAN labels of a point list, identical to Open3D's `PointCloud.cluster_dbscan(eps,
/// min_points)` on the same points (as Float64):
///
/// - the neighbours of a point are the points q with |p − q|² < eps² (squared distance
///   ((dx² + dy²) + dz²) in Float64), **itself included**;
/// - a point is a core point when it has at least `minPoints` neighbours;
/// - clusters are the connected components of the core points (two cores linked when
///   neighbours), numbered 0, 1, … in the order of their smallest point index (Open3D grows a
///   cluster from the first unlabelled core point in index order);
/// - a non-core point within eps of a core point is a border point and takes the smallest
///   cluster number among its core neighbours (the first cluster that reaches it);
/// - every other point is noise, −1.
///
/// The neighbour search hashes the points into cells of side eps / 2 (`CellGrid`, 5 × 5 × 5
/// cells per search). Every decision is the exact Float64 comparison above or follows from
/// it; the cells only bound which pairs are compared. Two points of one bounded cell are
/// always neighbours (at most √3/2 · eps apart), so a bounded cell with at least `minPoints`
/// points is all core without a comparison, a smaller one counts its own points wholesale,
/// and its cores are one component. A neighbour cell whose bounding box lies wholly within
/// eps of a point, or wholly beyond, is decided whole (`CellGrid.reach`); only straddling cells and
/// cells with clamped or non-finite coordinates are compared point by point. Core counting
/// stops at `minPoints` neighbours. Across cells, a pair
/// of cells whose cores are already in one component is skipped, otherwise their cores are
/// compared until one link is found; the union–find holds a clique cell's cores as one entry
/// (`CoreUnits`). On a dense surface at sensor resolution (hundreds of points per cell) this
/// leaves a few Float64 comparisons and union–find steps per *cell pair*, not per point: the
/// cost is the grid build and the labelling, O(points).
public struct DensityClusters: Sendable, Equatable {
    /// Per point: its cluster (0 ..< `clusterCount`) or −1 for noise.
    public let labels: [Int32]
    /// Number of clusters.
    public let clusterCount: Int

    /// Clusters `points` [N, 3] (metres).
    public init(points: Tensor, eps: Double, minPoints: Int) throws(GeometryError) {
        let n = try pointCount(of: points, argument: "points")
        try Self.validate(eps: eps, minPoints: minPoints)
        self = points.withUnsafeBufferPointer { Self(points: $0, count: n, eps: eps, minPoints: minPoints) }
    }

    static func validate(eps: Double, minPoints: Int) throws(GeometryError) {
        guard eps > 0, eps.isFinite else { throw .invalidParameter(name: "eps", value: "\(eps)", requirement: "positive and finite") }
        guard minPoints >= 1 else { throw .invalidParameter(name: "minPoints", value: "\(minPoints)", requirement: "at least 1") }
    }

    /// The label the official preprocessing keeps: the most frequent value of `labels`, noise
    /// (−1) counted as a group like any cluster, ties to the smallest label (NumPy's
    /// `unique(labels)[argmax(counts)]`). So when noise outnumbers every cluster the noise is
    /// kept; nil for no points.
    public var keptLabel: Int32? {
        var counts = [Int](repeating: 0, count: clusterCount + 1)  // index label + 1
        for label in labels { counts[Int(label) + 1] += 1 }
        return Self.keptLabel(counts: counts)
    }

    init(points: UnsafeBufferPointer<Float>, count n: Int, eps: Double, minPoints: Int) {
        guard n > 0 else {
            (labels, clusterCount) = ([], 0)
            return
        }
        let grid = CellGrid(coordinates: points.baseAddress!, slots: n, foregroundOnly: false, side: eps / 2, reach: 2)
        (labels, clusterCount) = grid.withDensityLabels(eps: eps, minPoints: minPoints) { positionLabels, clusterCount in
            var labels = [Int32](repeating: -1, count: n)
            for (position, id) in grid.order.enumerated() { labels[Int(id)] = positionLabels[position] }
            return (labels, clusterCount)
        }
    }

    /// The group the official preprocessing keeps, given `counts[label + 1]` (noise first):
    /// the largest, ties to the smallest label; nil for no points.
    static func keptLabel(counts: [Int]) -> Int32? {
        guard counts.reduce(0, +) > 0 else { return nil }
        let best = counts.indices.max { counts[$0] < counts[$1] || (counts[$0] == counts[$1] && $0 > $1) }!
        return Int32(best - 1)
    }
}

extension CellGrid {
    /// Whether (x, y, z) and the point at `position` are neighbours: Float64
    /// ((dx² + dy²) + dz²) < `limit`.
    @inline(__always)
    func close(_ p: SIMD3<Double>, _ position: Int, _ limit: Double) -> Bool {
        let q = point(position)
        let dx = p.x - q.x, dy = p.y - q.y, dz = p.z - q.z
        return dx * dx + dy * dy + dz * dz < limit
    }

    /// Which points of `cell` may be within eps of `x` (`limit` = eps²), decided from the
    /// cell's bounding box: with per-axis gaps g (0 inside) and spans f (to the far side) of the
    /// box, computed in Float64 like a pair distance, ((gx² + gy²) + gz²) ≥ eps² means no point
    /// of the cell is a neighbour and ((fx² + fy²) + fz²) < eps² means every one is. Exact, not
    /// approximate: rounded subtraction, squaring and addition are monotone, so no point of the
    /// box has a computed squared distance below the gap's or above the span's. Cells with
    /// clamped or non-finite coordinates are always `.some`.
    @inline(__always)
    func reach(_ x: SIMD3<Double>, _ cell: Int, _ limit: Double) -> CellReach {
        guard isBounded[cell] else { return .some }
        let low = boxLow[cell], high = boxHigh[cell]
        let gap = pointwiseMax(pointwiseMax(low - x, x - high), .zero)
        if gap.x * gap.x + gap.y * gap.y + gap.z * gap.z >= limit { return .none }
        let span = pointwiseMax(x - low, high - x)
        return span.x * span.x + span.y * span.y + span.z * span.z < limit ? .all : .some
    }

    /// Calls `body` with the DBSCAN labels per position (see `DensityClusters`) and the number
    /// of clusters. The grid must have been built with side eps / 2 and reach 2.
    ///
    /// The components are kept over `CoreUnits` (a clique cell's cores are one unit), so on a
    /// dense surface the union–find has an entry per cell, not per point.
    /// Memory: 4 bytes per point for the labels, 1 for the core flags, and 12 per unit.
    func withDensityLabels<Result>(eps: Double, minPoints: Int,
                                   _ body: (_ labels: UnsafeBufferPointer<Int32>, _ clusterCount: Int) -> Result) -> Result {
        let limit = eps * eps
        // Two points of a bounded cell are < √3/2 · eps apart; the shortcuts need that bound to
        // survive Float64 squaring (no overflow or underflow of eps²).
        let cellsAreCliques = limit.isNormal && limit.isFinite
        let isCore = coreFlags(limit: limit, minPoints: minPoints, cellsAreCliques: cellsAreCliques)
        let units = CoreUnits(self, cellsAreCliques: cellsAreCliques)
        let components = coreComponents(isCore: isCore, units: units, limit: limit, minPoints: minPoints)
        defer { components.deallocate() }

        // Clusters numbered by their smallest point id: per component root the smallest id of
        // its cores (a clique unit's is its first core's, positions ascend by id in a cell),
        // the roots sorted by it, then per unit the cluster of its root (−1: no cores).
        var smallestId = [Int32](repeating: .max, count: units.count)
        for cell in 0..<cellCount {
            for p in positions(cell) where isCore[p] {
                let r = components.root(units.unit(p, cell))
                smallestId[r] = min(smallestId[r], order[p])
                if units.isClique[cell] { break }
            }
        }
        let roots = smallestId.indices.filter { smallestId[$0] != .max }.sorted { smallestId[$0] < smallestId[$1] }
        var unitCluster = [Int32](repeating: -1, count: units.count)
        for (cluster, root) in roots.enumerated() { unitCluster[root] = Int32(cluster) }
        for u in 0..<units.count where smallestId[components.root(u)] != .max { unitCluster[u] = unitCluster[components.root(u)] }

        // Per position: a core's cluster; a border point the smallest cluster among its core
        // neighbours (a clique cell's cores all share one); the rest noise.
        var labels = [Int32](repeating: -1, count: pointCount)
        labels.withUnsafeMutableBufferPointer { labels in
            isCore.withUnsafeBufferPointer { isCore in
                unitCluster.withUnsafeBufferPointer { unitCluster in
                    parallelChunks(cellCount, minimumChunk: 8) { cells in
                        for cell in cells {
                            let around = neighbourCells(cell)
                            // A clique cell's cores share its one unit's cluster.
                            let cliqueCluster = units.isClique[cell] ? unitCluster[units.unit(positions(cell).lowerBound, cell)] : -1
                            for p in positions(cell) {
                                if isCore[p] {
                                    labels[p] = units.isClique[cell] ? cliqueCluster : unitCluster[units.unit(p, cell)]
                                    continue
                                }
                                var best = Int32.max
                                let x = point(p)
                                for d in around {
                                    let other = Int(d)
                                    let reach = reach(x, other, limit)
                                    if reach == .none { continue }
                                    let wholesale = reach == .all || (other == cell && units.isClique[cell])
                                    if units.isClique[other] {
                                        // One cluster (or none) for all its cores: one core in reach is enough.
                                        let cluster = unitCluster[units.unit(positions(other).lowerBound, other)]
                                        guard cluster >= 0 && cluster < best else { continue }
                                        if positions(other).contains(where: { isCore[$0] && (wholesale || close(x, $0, limit)) }) {
                                            best = cluster
                                        }
                                        continue
                                    }
                                    for q in positions(other) where isCore[q] && (wholesale || close(x, q, limit)) {
                                        best = min(best, unitCluster[units.unit(q, other)])
                                    }
                                }
                                labels[p] = best == .max ? -1 : best
                            }
                        }
                    }
                }
            }
        }
        return labels.withUnsafeBufferPointer { body($0, roots.count) }
    }

    /// Per position: at least `minPoints` neighbours (itself included)? Each count stops as soon
    /// as it reaches `minPoints`; the point's own cell is searched first and, when it is a
    /// bounded clique, counted whole, like every cell whose box lies within eps of the point;
    /// cells whose box is eps or further away are skipped (`reach`).
    func coreFlags(limit: Double, minPoints: Int, cellsAreCliques: Bool) -> [Bool] {
        var flags = [Bool](repeating: false, count: pointCount)
        flags.withUnsafeMutableBufferPointer { flags in
            parallelChunks(cellCount, minimumChunk: 8) { cells in
                for cell in cells {
                    let own = positions(cell), clique = cellsAreCliques && isBounded[cell]
                    if clique && own.count >= minPoints {
                        UnsafeMutableBufferPointer(rebasing: flags[own]).update(repeating: true)
                        continue
                    }
                    let around = neighbourCells(cell)
                    for p in own {
                        let x = point(p)
                        var count = 0
                        search: for d in around {
                            let reach = reach(x, Int(d), limit)
                            if reach == .none { continue }
                            if reach == .all || (clique && Int(d) == cell) {
                                count += positions(Int(d)).count
                                if count >= minPoints { break search }
                                continue
                            }
                            for q in positions(Int(d)) where close(x, q, limit) {
                                count += 1
                                if count >= minPoints { break search }
                            }
                        }
                        flags[p] = count >= minPoints
                    }
                }
            }
        }
        return flags
    }

    /// The connected components of the core positions (cores linked when neighbours), over
    /// `units`: a clique cell's cores are one unit already. In other cells every core is
    /// compared with the cell's first core; cells where one of those comparisons fails are
    /// "loose" and compared pair by pair. Across cells — touching cells first, then those two
    /// cells apart, so most far pairs are already joined — a pair of cells whose first cores are
    /// already in one component is skipped (both are then wholly in it), otherwise their cores
    /// are compared until one link is found. A core further than eps from the other cell's
    /// bounding box of cores is not compared at all (the box distance never exceeds a true
    /// distance, also in Float64 rounding).
    func coreComponents(isCore: [Bool], units: CoreUnits, limit: Double, minPoints: Int) -> UnionFind {
        let components = UnionFind(count: units.count)
        func join(_ p: Int, _ pCell: Int, _ q: Int, _ qCell: Int) { components.union(units.unit(p, pCell), units.unit(q, qCell)) }
        func joined(_ p: Int, _ pCell: Int, _ q: Int, _ qCell: Int) -> Bool {
            components.root(units.unit(p, pCell)) == components.root(units.unit(q, qCell))
        }
        var firstCore = [Int](repeating: -1, count: cellCount), loose = [Bool](repeating: false, count: cellCount)
        var low = [SIMD3<Double>](repeating: .zero, count: cellCount), high = low
        /// Whether `p` may be within eps of a core of `cell`: ((gx² + gy²) + gz²) < limit for
        /// the gaps g between `p` and the cell's box of cores.
        func mayReach(_ x: SIMD3<Double>, _ cell: Int) -> Bool {
            let gap = pointwiseMax(pointwiseMax(low[cell] - x, x - high[cell]), .zero)
            return gap.x * gap.x + gap.y * gap.y + gap.z * gap.z < limit
        }
        for cell in 0..<cellCount {
            if units.isClique[cell], let first = positions(cell).first(where: { isCore[$0] }) {
                // One unit; the box of its cores is the cell's own when all of its points are cores
                // (always with at least `minPoints` of them, `coreFlags`).
                firstCore[cell] = first
                let allCore = positions(cell).count >= minPoints || positions(cell).allSatisfy { isCore[$0] }
                if allCore {
                    (low[cell], high[cell]) = (boxLow[cell], boxHigh[cell])
                } else {
                    (low[cell], high[cell]) = (point(first), point(first))
                    for q in positions(cell) where isCore[q] {
                        low[cell] = pointwiseMin(low[cell], point(q))
                        high[cell] = pointwiseMax(high[cell], point(q))
                    }
                }
                continue
            }
            for q in positions(cell) where isCore[q] {
                let x = point(q)
                guard firstCore[cell] >= 0 else {
                    firstCore[cell] = q
                    (low[cell], high[cell]) = (x, x)
                    continue
                }
                low[cell] = pointwiseMin(low[cell], x)
                high[cell] = pointwiseMax(high[cell], x)
                if close(point(firstCore[cell]), q, limit) {
                    join(firstCore[cell], cell, q, cell)
                } else {
                    loose[cell] = true
                }
            }
            if loose[cell] {
                let cores = positions(cell).filter { isCore[$0] }
                for (i, p) in cores.enumerated() {
                    for q in cores[(i + 1)...] where !joined(p, cell, q, cell) && close(point(p), q, limit) {
                        join(p, cell, q, cell)
                    }
                }
            }
        }
        // The neighbour lists run nearest offsets first: the touching cells (ring 1) before those
        // two cells apart (ring 2).
        var touching = [Int](repeating: 0, count: cellCount)  // per cell: its ring-1 neighbours
        for cell in 0..<cellCount where firstCore[cell] >= 0 {
            touching[cell] = neighbourCells(cell).dropFirst().prefix { self.ring(cell, Int($0)) == 1 }.count
        }
        for ring in 1...2 {
            for cell in 0..<cellCount where firstCore[cell] >= 0 {
                let around = neighbourCells(cell).dropFirst()
                let sameRing = ring == 1 ? around.prefix(touching[cell]) : around.dropFirst(touching[cell])
                let unit = units.unit(firstCore[cell], cell)
                var root = components.root(unit)
                for d in sameRing where Int(d) > cell && firstCore[Int(d)] >= 0 {
                    let other = Int(d)
                    defer { root = components.root(unit) }
                    if loose[cell] || loose[other] {
                        for p in positions(cell) where isCore[p] && mayReach(point(p), other) {
                            for q in positions(other) where isCore[q] && !joined(p, cell, q, other) && close(point(p), q, limit) {
                                join(p, cell, q, other)
                            }
                        }
                    } else if root != components.root(units.unit(firstCore[other], other)) {
                        link: for p in positions(cell) where isCore[p] {
                            let x = point(p)
                            guard mayReach(x, other) else { continue }
                            for q in positions(other) where isCore[q] && close(x, q, limit) {
                                join(p, cell, q, other)
                                break link
                            }
                        }
                    }
                }
            }
        }
        return components
    }
}

/// How many points of a cell may be within eps of a point (`CellGrid.reach`).
enum CellReach { case none, some, all }

/// The union–find units of DBSCAN's core points on a `CellGrid`: the cores of a clique cell
/// (bounded, with eps² normal: any two of its points are neighbours) are one unit, every point
/// of another cell its own. Units are numbered cell by cell.
struct CoreUnits {
    /// Per cell: whether it is one unit.
    let isClique: [Bool]
    /// Per cell (and one past the last): its first unit.
    let firstUnit: [Int32]
    /// The grid's `start`.
    private let start: [Int32]

    init(_ grid: CellGrid, cellsAreCliques: Bool) {
        start = grid.start
        isClique = grid.isBounded.map { $0 && cellsAreCliques }
        var firstUnit = [Int32](repeating: 0, count: grid.cellCount + 1)
        for c in 0..<grid.cellCount { firstUnit[c + 1] = firstUnit[c] + (isClique[c] ? 1 : Int32(grid.positions(c).count)) }
        self.firstUnit = firstUnit
    }

    /// Number of units.
    var count: Int { Int(firstUnit.last!) }

    /// The unit of position `p`, which lies in `cell`.
    @inline(__always)
    func unit(_ p: Int, _ cell: Int) -> Int { Int(firstUnit[cell]) + (isClique[cell] ? 0 : p - Int(start[cell])) }
}

/// Union–find over 0 ..< count whose roots are the smallest member (the larger root is
/// attached below the smaller), with path halving. Manually managed storage (no copy-on-write
/// checks in the hot loops): the owner calls `deallocate()` exactly once.
struct UnionFind {
    private let parent: UnsafeMutablePointer<Int32>
    let count: Int

    init(count: Int) {
        self.count = count
        parent = .allocate(capacity: max(1, count))
        for i in 0..<count { parent[i] = Int32(i) }
    }

    func deallocate() { parent.deallocate() }

    func root(_ i: Int) -> Int {
        var i = i
        while Int(parent[i]) != i {
            parent[i] = parent[Int(parent[i])]
            i = Int(parent[i])
        }
        return i
    }

    func union(_ a: Int, _ b: Int) {
        let ra = root(a), rb = root(b)
        if ra < rb { parent[rb] = Int32(ra) } else if rb < ra { parent[ra] = Int32(rb) }
    }
}

extension OrganizedCloudView {
    /// Clears every foreground point outside the group `DensityClusters.keptLabel` picks among
    /// the DBSCAN labels of the foreground points (eps metres, `minPoints`) and returns how
    /// many it cleared. The cloud is hashed in place (`CellGrid` over its foreground pixels),
    /// so the labels are per grid position and never gathered into a point list: about 9
    /// bytes per foreground point (grid order, labels, core flags) and 4 per union–find unit.
    func keepLargestDensityCluster(eps: Double, minPoints: Int) -> Int {
        let pixels = pixelCount
        guard pixels > 0 else { return 0 }
        let c = coordinates
        let grid = CellGrid(coordinates: c.baseAddress!, slots: pixels, foregroundOnly: true, side: eps / 2, reach: 2)
        return grid.withDensityLabels(eps: eps, minPoints: minPoints) { labels, clusterCount in
            // Counted run by run (a cell's points mostly share a label), per worker.
            var counts = [[Int]](repeating: [Int](repeating: 0, count: clusterCount + 1), count: cpuCount)  // index label + 1
            counts.withUnsafeMutableBufferPointer { counts in
                parallelWorkers(labels.count, minimumChunk: 1 << 16) { worker, positions in
                    counts[worker].withUnsafeMutableBufferPointer { counts in
                        var label = labels[positions.lowerBound], run = 0
                        for p in positions {
                            if labels[p] != label {
                                counts[Int(label) + 1] += run
                                (label, run) = (labels[p], 0)
                            }
                            run += 1
                        }
                        counts[Int(label) + 1] += run
                    }
                }
            }
            let total = (0...clusterCount).map { label in counts.reduce(0) { $0 + $1[label] } }
            guard let kept = DensityClusters.keptLabel(counts: total) else { return 0 }
            grid.order.withUnsafeBufferPointer { order in
                parallelChunks(labels.count, minimumChunk: 1 << 16) { positions in
                    for p in positions where labels[p] != kept {
                        let i = 3 * Int(order[p])
                        (c[i], c[i + 1], c[i + 2]) = (0, 0, 0)
                    }
                }
            }
            return labels.count - total[Int(kept) + 1]
        }
    }
}
