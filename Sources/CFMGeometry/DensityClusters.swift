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
/// cells per search). Every decision is the exact Float64 comparison above; the cells only
/// bound which pairs are compared. Core counting stops at `minPoints` neighbours, so on dense
/// surfaces each point compares about `minPoints` pairs, and core points of one cell (at most
/// 0.87 eps apart) are linked through the cell's first core point, so cells, not points, are
/// joined across.
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
        guard !labels.isEmpty else { return nil }
        var counts = [Int](repeating: 0, count: clusterCount + 1)  // index label + 1
        for label in labels { counts[Int(label) + 1] += 1 }
        let best = counts.indices.max { counts[$0] < counts[$1] || (counts[$0] == counts[$1] && $0 > $1) }!
        return Int32(best - 1)
    }

    init(points: UnsafeBufferPointer<Float>, count n: Int, eps: Double, minPoints: Int) {
        let grid = CellGrid(points: points, count: n, side: eps / 2, reach: 2)
        let limit = eps * eps
        // Everything below works on positions into the grid's cell order (`grid.order`).
        let isCore = grid.coreFlags(limit: limit, minPoints: minPoints)
        var components = grid.coreComponents(isCore: isCore, limit: limit)

        // Clusters numbered by their smallest point index.
        var labels = [Int32](repeating: -1, count: n)
        var rootOfPoint = [Int32](repeating: -1, count: n)  // by point index: the root position
        for position in 0..<n where isCore[position] { rootOfPoint[Int(grid.order[position])] = Int32(components.root(position)) }
        var clusterOfRoot = [Int32](repeating: -1, count: n)
        var clusterCount: Int32 = 0
        for i in 0..<n where rootOfPoint[i] >= 0 {
            let root = Int(rootOfPoint[i])
            if clusterOfRoot[root] < 0 {
                clusterOfRoot[root] = clusterCount
                clusterCount += 1
            }
            labels[i] = clusterOfRoot[root]
        }
        // Border points: the smallest cluster among their core neighbours.
        var clusterAt = [Int32](repeating: -1, count: n)  // by position
        for position in 0..<n where isCore[position] { clusterAt[position] = labels[Int(grid.order[position])] }
        let border = grid.borderClusters(isCore: isCore, clusterAt: clusterAt, limit: limit)
        for (position, cluster) in border { labels[Int(grid.order[position])] = cluster }
        self.labels = labels
        self.clusterCount = Int(clusterCount)
    }
}

extension CellGrid {
    /// Whether positions `a` and `b` are neighbours: Float64 ((dx² + dy²) + dz²) < `limit`.
    @inline(__always)
    static func close(_ c: UnsafeBufferPointer<Double>, _ a: Int, _ b: Int, _ limit: Double) -> Bool {
        let dx = c[3 * a] - c[3 * b], dy = c[3 * a + 1] - c[3 * b + 1], dz = c[3 * a + 2] - c[3 * b + 2]
        return dx * dx + dy * dy + dz * dz < limit
    }

    /// Per position: at least `minPoints` neighbours (itself included)? Each count stops as soon
    /// as it reaches `minPoints`; the point's own cell is searched first.
    func coreFlags(limit: Double, minPoints: Int) -> [Bool] {
        var flags = [Bool](repeating: false, count: order.count)
        coordinates.withUnsafeBufferPointer { c in
            flags.withUnsafeMutableBufferPointer { flags in
                parallelChunks(cellCount, minimumChunk: 8) { cells in
                    for cell in cells {
                        let around = neighbourCells(cell)
                        for p in positions(cell) {
                            var count = 0
                            search: for d in around {
                                for q in positions(Int(d)) where Self.close(c, p, q, limit) {
                                    count += 1
                                    if count >= minPoints { break search }
                                }
                            }
                            flags[p] = count >= minPoints
                        }
                    }
                }
            }
        }
        return flags
    }

    /// The connected components of the core positions (cores linked when neighbours). Within
    /// a cell every core is compared with the cell's first core; cells where one of those
    /// comparisons fails are "loose" and compared pair by pair. Across cells — touching cells
    /// first, then those two cells apart, so most far pairs are already joined — a pair of
    /// cells whose first cores are already in one component is skipped (both are then wholly
    /// in it), otherwise their cores are compared until one link is found. A core further than
    /// eps from the other cell's bounding box of cores is not compared at all (the box
    /// distance never exceeds a true distance, also in Float64 rounding).
    func coreComponents(isCore: [Bool], limit: Double) -> UnionFind {
        var components = UnionFind(count: order.count)
        var firstCore = [Int](repeating: -1, count: cellCount), loose = [Bool](repeating: false, count: cellCount)
        var cores = [[Int]](repeating: [], count: cellCount)
        var low = [SIMD3<Double>](repeating: .zero, count: cellCount), high = low
        coordinates.withUnsafeBufferPointer { c in
            func point(_ p: Int) -> SIMD3<Double> { SIMD3(c[3 * p], c[3 * p + 1], c[3 * p + 2]) }
            /// Whether `p` may be within eps of a core of `cell`: ((gx² + gy²) + gz²) < limit for
            /// the gaps g between `p` and the cell's box of cores.
            func mayReach(_ p: Int, _ cell: Int) -> Bool {
                let x = point(p)
                let gap = pointwiseMax(pointwiseMax(low[cell] - x, x - high[cell]), .zero)
                return gap.x * gap.x + gap.y * gap.y + gap.z * gap.z < limit
            }
            for cell in 0..<cellCount {
                cores[cell] = positions(cell).filter { isCore[$0] }
                guard let first = cores[cell].first else { continue }
                firstCore[cell] = first
                low[cell] = point(first)
                high[cell] = low[cell]
                for q in cores[cell].dropFirst() {
                    low[cell] = pointwiseMin(low[cell], point(q))
                    high[cell] = pointwiseMax(high[cell], point(q))
                    if Self.close(c, first, q, limit) { components.union(first, q) } else { loose[cell] = true }
                }
                if loose[cell] {
                    for (i, p) in cores[cell].enumerated() {
                        for q in cores[cell][(i + 1)...] where components.root(p) != components.root(q) && Self.close(c, p, q, limit) {
                            components.union(p, q)
                        }
                    }
                }
            }
            for ring: Int32 in 1...2 {
                for cell in 0..<cellCount where firstCore[cell] >= 0 {
                    for d in neighbourCells(cell).dropFirst() where Int(d) > cell && firstCore[Int(d)] >= 0 && self.ring(cell, Int(d)) == ring {
                        let other = Int(d)
                        if loose[cell] || loose[other] {
                            for p in cores[cell] where mayReach(p, other) {
                                for q in cores[other] where components.root(p) != components.root(q) && Self.close(c, p, q, limit) {
                                    components.union(p, q)
                                }
                            }
                        } else if components.root(firstCore[cell]) != components.root(firstCore[other]) {
                            link: for p in cores[cell] where mayReach(p, other) {
                                for q in cores[other] where Self.close(c, p, q, limit) {
                                    components.union(p, q)
                                    break link
                                }
                            }
                        }
                    }
                }
            }
        }
        return components
    }

    /// The non-core positions within eps of a core one, each with the smallest `clusterAt` of
    /// its core neighbours.
    func borderClusters(isCore: [Bool], clusterAt: [Int32], limit: Double) -> [(position: Int, cluster: Int32)] {
        var found = [[(position: Int, cluster: Int32)]](repeating: [], count: cpuCount)
        coordinates.withUnsafeBufferPointer { c in
            found.withUnsafeMutableBufferPointer { found in
                parallelWorkers(cellCount, minimumChunk: 8) { worker, cells in
                    for cell in cells {
                        for p in positions(cell) where !isCore[p] {
                            var best = Int32.max
                            for d in neighbourCells(cell) {
                                for q in positions(Int(d)) where isCore[q] && clusterAt[q] < best && Self.close(c, p, q, limit) {
                                    best = clusterAt[q]
                                }
                            }
                            if best != .max { found[worker].append((p, best)) }
                        }
                    }
                }
            }
        }
        return found.flatMap { $0 }
    }
}

/// Union–find over 0 ..< count whose roots are the smallest member (the larger root is
/// attached below the smaller), with path halving.
struct UnionFind {
    private var parent: [Int32]

    init(count: Int) { parent = (0..<count).map { Int32($0) } }

    mutating func root(_ i: Int) -> Int {
        var i = i
        while Int(parent[i]) != i {
            parent[i] = parent[Int(parent[i])]
            i = Int(parent[i])
        }
        return i
    }

    mutating func union(_ a: Int, _ b: Int) {
        let ra = root(a), rb = root(b)
        if ra < rb { parent[rb] = Int32(ra) } else if rb < ra { parent[ra] = Int32(rb) }
    }
}

extension OrganizedCloud {
    /// Clears every foreground point outside the group `DensityClusters.keptLabel` picks among
    /// the DBSCAN labels of the foreground points (row-major pixel order, eps metres,
    /// `minPoints`) and returns how many it cleared.
    mutating func keepLargestDensityCluster(eps: Double, minPoints: Int) -> Int {
        let foreground = ForegroundPoints(of: self)
        let clusters = foreground.points.withUnsafeBufferPointer {
            DensityClusters(points: $0, count: foreground.count, eps: eps, minPoints: minPoints)
        }
        guard let kept = clusters.keptLabel else { return 0 }
        var removed = 0
        for (point, pixel) in foreground.pixelIndices.enumerated() where clusters.labels[point] != kept {
            for a in 0..<3 { coordinates[3 * pixel + a] = 0 }
            removed += 1
        }
        return removed
    }
}
