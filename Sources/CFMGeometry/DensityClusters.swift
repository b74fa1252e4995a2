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
/// eps of a point, or wholly beyond, is decided whole (`CellBoxes`); only straddling cells and
/// cells with clamped or non-finite coordinates are compared point by point. Core counting
/// stops at `minPoints` neighbours. Across cells, a pair
/// of cells whose cores are already in one component is skipped, otherwise their cores are
/// compared until one link is found. On a dense surface at sensor resolution (hundreds of
/// points per cell) this leaves a few Float64 comparisons per *cell pair*, not per point:
/// the cost is the grid build, one union–find pass and the labelling, O(points).
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

    /// Calls `body` with the DBSCAN labels per position (see `DensityClusters`) and the number
    /// of clusters. The grid must have been built with side eps / 2 and reach 2.
    ///
    /// Memory: 4 bytes per point for the union–find, which then holds the labels in place,
    /// and 1 for the core flags.
    func withDensityLabels<Result>(eps: Double, minPoints: Int,
                                   _ body: (_ labels: UnsafeBufferPointer<Int32>, _ clusterCount: Int) -> Result) -> Result {
        let limit = eps * eps
        // Two points of a bounded cell are < √3/2 · eps apart; the shortcuts need that bound to
        // survive Float64 squaring (no overflow or underflow of eps²).
        let cellsAreCliques = limit.isNormal && limit.isFinite
        let boxes = CellBoxes(self)
        let isCore = coreFlags(limit: limit, minPoints: minPoints, cellsAreCliques: cellsAreCliques, boxes: boxes)
        let components = coreComponents(isCore: isCore, limit: limit, cellsAreCliques: cellsAreCliques, boxes: boxes)
        defer { components.deallocate() }
        let n = pointCount

        // Clusters numbered by their smallest point id. Every core's entry is pointed straight
        // at its root; the roots (the smallest position of their component, so met first and
        // listed ascending) get the smallest id of their component and are sorted by it; then
        // each core's entry is overwritten by its cluster — the union–find becomes the labels.
        let labels = components.entries
        var roots: [Int] = [], smallestId: [Int32] = []
        for p in 0..<n where isCore[p] {
            let r = components.root(p)
            labels[p] = Int32(r)
            if r == p {
                roots.append(p)
                smallestId.append(order[p])
            } else {
                let slot = roots.ascendingIndex(of: r)
                smallestId[slot] = min(smallestId[slot], order[p])
            }
        }
        var clusterOfSlot = [Int32](repeating: 0, count: roots.count)
        for (cluster, slot) in roots.indices.sorted(by: { smallestId[$0] < smallestId[$1] }).enumerated() {
            clusterOfSlot[slot] = Int32(cluster)
        }
        for p in 0..<n where isCore[p] { labels[p] = clusterOfSlot[roots.ascendingIndex(of: Int(labels[p]))] }
        // Border points: the smallest cluster among their core neighbours; the rest noise.
        do {
            isCore.withUnsafeBufferPointer { isCore in
                parallelChunks(cellCount, minimumChunk: 8) { cells in
                    for cell in cells {
                        let around = neighbourCells(cell)
                        for p in positions(cell) where !isCore[p] {
                            var best = Int32.max
                            let x = point(p)
                            for d in around {
                                let reach = boxes.reach(x, Int(d), limit)
                                if reach == .none { continue }
                                let wholesale = reach == .all || (Int(d) == cell && cellsAreCliques && isBounded[cell])
                                for q in positions(Int(d)) where isCore[q] && labels[q] < best && (wholesale || close(x, q, limit)) {
                                    best = labels[q]
                                }
                            }
                            labels[p] = best == .max ? -1 : best
                        }
                    }
                }
            }
        }
        return body(UnsafeBufferPointer(labels), roots.count)
    }

    /// Per position: at least `minPoints` neighbours (itself included)? Each count stops as soon
    /// as it reaches `minPoints`; the point's own cell is searched first and, when it is a
    /// bounded clique, counted whole, like every cell whose box lies within eps of the point;
    /// cells whose box is eps or further away are skipped (`CellBoxes`).
    func coreFlags(limit: Double, minPoints: Int, cellsAreCliques: Bool, boxes: CellBoxes) -> [Bool] {
        var flags = [Bool](repeating: false, count: pointCount)
        flags.withUnsafeMutableBufferPointer { flags in
            parallelChunks(cellCount, minimumChunk: 8) { cells in
                for cell in cells {
                    let own = positions(cell), clique = cellsAreCliques && isBounded[cell]
                    if clique && own.count >= minPoints {
                        for p in own { flags[p] = true }
                        continue
                    }
                    let around = neighbourCells(cell)
                    for p in own {
                        let x = point(p)
                        var count = 0
                        search: for d in around {
                            let reach = boxes.reach(x, Int(d), limit)
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

    /// The connected components of the core positions (cores linked when neighbours). The
    /// cores of a bounded cell are one component (a clique). In other cells every core is
    /// compared with the cell's first core; cells where one of those comparisons fails are
    /// "loose" and compared pair by pair. Across cells — touching cells first, then those two
    /// cells apart, so most far pairs are already joined — a pair of cells whose first cores are
    /// already in one component is skipped (both are then wholly in it), otherwise their cores
    /// are compared until one link is found. A core further than eps from the other cell's
    /// bounding box of cores is not compared at all (the box distance never exceeds a true
    /// distance, also in Float64 rounding).
    func coreComponents(isCore: [Bool], limit: Double, cellsAreCliques: Bool, boxes: CellBoxes) -> UnionFind {
        let components = UnionFind(count: pointCount)
        var firstCore = [Int](repeating: -1, count: cellCount), loose = [Bool](repeating: false, count: cellCount)
        var low = [SIMD3<Double>](repeating: .zero, count: cellCount), high = low
        /// Whether `p` may be within eps of a core of `cell`: ((gx² + gy²) + gz²) < limit for
        /// the gaps g between `p` and the cell's box of cores.
        func mayReach(_ x: SIMD3<Double>, _ cell: Int) -> Bool {
            let gap = pointwiseMax(pointwiseMax(low[cell] - x, x - high[cell]), .zero)
            return gap.x * gap.x + gap.y * gap.y + gap.z * gap.z < limit
        }
        for cell in 0..<cellCount {
            let clique = cellsAreCliques && isBounded[cell]
            if clique, let first = positions(cell).first(where: { isCore[$0] }) {
                // A clique: its cores are one component, their box is the cell's own when all
                // of its points are cores.
                firstCore[cell] = first
                var allCore = true
                for q in positions(cell).dropFirst(first - positions(cell).lowerBound + 1) {
                    if isCore[q] { components.union(first, q) } else { allCore = false }
                }
                if allCore && first == positions(cell).lowerBound {
                    (low[cell], high[cell]) = boxes.box(cell)
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
                    components.union(firstCore[cell], q)
                } else {
                    loose[cell] = true
                }
            }
            if loose[cell] {
                let cores = positions(cell).filter { isCore[$0] }
                for (i, p) in cores.enumerated() {
                    for q in cores[(i + 1)...] where components.root(p) != components.root(q) && close(point(p), q, limit) {
                        components.union(p, q)
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
                for d in sameRing where Int(d) > cell && firstCore[Int(d)] >= 0 {
                    let other = Int(d)
                    if loose[cell] || loose[other] {
                        for p in positions(cell) where isCore[p] && mayReach(point(p), other) {
                            for q in positions(other) where isCore[q] && components.root(p) != components.root(q) && close(point(p), q, limit) {
                                components.union(p, q)
                            }
                        }
                    } else if components.root(firstCore[cell]) != components.root(firstCore[other]) {
                        link: for p in positions(cell) where isCore[p] {
                            let x = point(p)
                            guard mayReach(x, other) else { continue }
                            for q in positions(other) where isCore[q] && close(x, q, limit) {
                                components.union(p, q)
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

/// The bounding box of each bounded cell's points, to decide a point against a whole cell:
/// with per-axis gaps g (0 inside) and spans f (to the far side) of the box, computed in
/// Float64 like a pair distance, ((gx² + gy²) + gz²) ≥ eps² means no point of the cell is a
/// neighbour and ((fx² + fy²) + fz²) < eps² means every one is. Exact, not approximate:
/// rounded subtraction, squaring and addition are monotone, so no point of the box has a
/// computed squared distance below the gap's or above the span's.
struct CellBoxes {
    enum Reach { case none, some, all }
    private var low: [SIMD3<Double>], high: [SIMD3<Double>]
    private let isBounded: [Bool]

    init(_ grid: CellGrid) {
        low = [SIMD3<Double>](repeating: .zero, count: grid.cellCount)
        high = low
        isBounded = grid.isBounded
        low.withUnsafeMutableBufferPointer { low in
            high.withUnsafeMutableBufferPointer { high in
                parallelChunks(grid.cellCount, minimumChunk: 64) { cells in
                    for cell in cells where grid.isBounded[cell] {
                        let positions = grid.positions(cell)
                        var l = grid.point(positions.lowerBound), h = l
                        for p in positions.dropFirst() {
                            let x = grid.point(p)
                            l = pointwiseMin(l, x)
                            h = pointwiseMax(h, x)
                        }
                        (low[cell], high[cell]) = (l, h)
                    }
                }
            }
        }
    }

    /// The box of bounded cell `cell`: lowest and highest coordinates of its points.
    func box(_ cell: Int) -> (low: SIMD3<Double>, high: SIMD3<Double>) { (low[cell], high[cell]) }

    /// Which points of `cell` may be within eps of `x` (`limit` = eps²): none, some, all.
    /// Cells with clamped or non-finite coordinates are always `.some`.
    @inline(__always)
    func reach(_ x: SIMD3<Double>, _ cell: Int, _ limit: Double) -> Reach {
        guard isBounded[cell] else { return .some }
        let below = low[cell] - x, above = x - high[cell]
        let gap = pointwiseMax(pointwiseMax(below, above), .zero)
        if gap.x * gap.x + gap.y * gap.y + gap.z * gap.z >= limit { return .none }
        let span = pointwiseMax(x - low[cell], high[cell] - x)
        return span.x * span.x + span.y * span.y + span.z * span.z < limit ? .all : .some
    }
}

extension Array where Element == Int {
    /// The index of `value` in this ascending array, which holds it (binary search).
    func ascendingIndex(of value: Int) -> Int {
        var low = 0, high = count - 1
        while low < high {
            let mid = (low + high) / 2
            if self[mid] < value { low = mid + 1 } else { high = mid }
        }
        return low
    }
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

    /// The parent entries themselves, for an owner that reuses them once the components are
    /// read (`withDensityLabels` turns them into labels).
    var entries: UnsafeMutableBufferPointer<Int32> { UnsafeMutableBufferPointer(start: parent, count: count) }

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

extension OrganizedCloud {
    /// Clears every foreground point outside the group `DensityClusters.keptLabel` picks among
    /// the DBSCAN labels of the foreground points (eps metres, `minPoints`) and returns how
    /// many it cleared. The cloud is hashed in place (`CellGrid` over its foreground pixels),
    /// so the labels are per grid position and never gathered into a point list: about 9
    /// bytes per foreground point (grid order, union–find turned labels, core flags).
    mutating func keepLargestDensityCluster(eps: Double, minPoints: Int) -> Int {
        let pixels = pixelCount
        guard pixels > 0 else { return 0 }
        return coordinates.withUnsafeMutableBufferPointer { c in
            let grid = CellGrid(coordinates: c.baseAddress!, slots: pixels, foregroundOnly: true, side: eps / 2, reach: 2)
            return grid.withDensityLabels(eps: eps, minPoints: minPoints) { labels, clusterCount in
                var counts = [Int](repeating: 0, count: clusterCount + 1)  // index label + 1
                for label in labels { counts[Int(label) + 1] += 1 }
                guard let kept = DensityClusters.keptLabel(counts: counts) else { return 0 }
                var removed = 0
                for (position, pixel) in grid.order.enumerated() where labels[position] != kept {
                    let i = 3 * Int(pixel)
                    (c[i], c[i + 1], c[i + 2]) = (0, 0, 0)
                    removed += 1
                }
                return removed
            }
        }
    }
}
