import CFMTensor

/// Parameters of background removal; the defaults are those of the authors' preprocessing.
public struct BackgroundRemovalOptions: Sendable, Equatable {
    /// Width in pixels of the image border ring whose foreground points the plane is fitted to.
    public var borderWidth = 10
    /// Points per RANSAC hypothesis (least-squares plane through them).
    public var sampleSize = 50
    /// RANSAC inlier distance, metres.
    public var inlierDistance = 0.004
    /// RANSAC hypotheses.
    public var iterations = 1000
    /// Seed of the RANSAC sampling (deterministic results).
    public var seed: UInt64 = 0
    /// Foreground points closer than this to the plane (metres) are cleared.
    public var planeDistance = 0.005
    /// How the part is kept once the plane is gone (`ClusterCleaning`).
    public var clusterCleaning = ClusterCleaning.dbscan
    /// Metres: DBSCAN's eps (points closer than this are neighbours), or for
    /// `.pixelNeighbours` the largest distance that links two 8-neighbour pixels.
    public var clusterDistance = 0.006
    /// DBSCAN's minimum number of neighbours (itself included) of a core point.
    public var clusterMinPoints = 30

    public init() {}

    func validate() throws(GeometryError) {
        func require(_ ok: Bool, _ name: String, _ value: Any, _ requirement: String) throws(GeometryError) {
            if !ok { throw .invalidParameter(name: name, value: "\(value)", requirement: requirement) }
        }
        try require(borderWidth >= 1, "borderWidth", borderWidth, "at least 1")
        try require(sampleSize >= 3, "sampleSize", sampleSize, "at least 3")
        try require(inlierDistance > 0, "inlierDistance", inlierDistance, "positive")
        try require(iterations >= 1, "iterations", iterations, "at least 1")
        try require(planeDistance > 0, "planeDistance", planeDistance, "positive")
        try require(clusterDistance > 0, "clusterDistance", clusterDistance, "positive")
        try require(clusterMinPoints >= 1, "clusterMinPoints", clusterMinPoints, "at least 1")
    }
}

/// What background removal did to a cloud.
public struct BackgroundRemovalReport: Sendable, Equatable {
    /// The support plane, or nil when none was found (fewer border points than a RANSAC
    /// sample); then the cloud is left untouched.
    public var plane: Plane?
    /// Foreground points in the border ring the plane was fitted to.
    public var borderPoints: Int
    /// Border points within the inlier distance of `plane`.
    public var planeInliers: Int
    /// Foreground points cleared because they lie on the plane.
    public var removedByPlane: Int
    /// Foreground points cleared because they lie outside the largest cluster.
    public var removedByCluster: Int
    /// Foreground points left.
    public var remaining: Int

    public var planeFound: Bool { plane != nil }
}

extension OrganizedCloud {
    /// Removes the support plane and stray clusters from `coordinates` in place
    /// (`OrganizedCloudView.removeBackground`).
    public mutating func removeBackground(
        options: BackgroundRemovalOptions = BackgroundRemovalOptions(),
        stepFinished: (BackgroundRemovalStep) -> Void = { _ in }
    ) throws(GeometryError) -> BackgroundRemovalReport {
        try withView { (view) throws(GeometryError) in try view.removeBackground(options: options, stepFinished: stepFinished) }
    }
}

extension OrganizedCloudView {
    /// Removes the support plane and stray clusters in place: RANSAC plane fit
    /// on the foreground points of the border ring, clear every foreground point with
    /// |n·p + d| < `planeDistance`, then keep only the largest cluster (`clusterCleaning`). Without a
    /// plane (too few border points) nothing is removed and the report says so.
    ///
    /// Cost: RANSAC over the ring's points only, mostly a few Float64 operations per 16 × 16-pixel
    /// block of them (`PlaneInlierCounter`); one parallel pass over the pixels for the plane;
    /// the cluster cleaning works on the foreground pixels in place (DBSCAN: ~9 bytes per
    /// remaining point and a union–find entry per grid cell on a surface,
    /// `keepLargestDensityCluster`; pixel rule: 8 bytes per pixel). No full-resolution copy
    /// of the coordinates is made.
    ///
    /// `stepFinished` is called as each step ends — `.plane` after the border ring, RANSAC and
    /// the plane clearing (also when no plane was found), `.clusters` after cluster cleaning —
    /// so a caller can time them.
    public func removeBackground(
        options: BackgroundRemovalOptions = BackgroundRemovalOptions(),
        stepFinished: (BackgroundRemovalStep) -> Void = { _ in }
    ) throws(GeometryError) -> BackgroundRemovalReport {
        try options.validate()
        let border = borderPoints(width: options.borderWidth)
        let fit = border.points.isEmpty ? nil : border.points.withUnsafeBufferPointer { b in
            ransacPlane(b.baseAddress!, count: b.count / 3, groups: border.tiles, groupCount: border.tileCount,
                        sampleSize: options.sampleSize, inlierDistance: options.inlierDistance,
                        iterations: options.iterations, seed: options.seed)
        }
        guard let fit else {
            stepFinished(.plane)
            return BackgroundRemovalReport(plane: nil, borderPoints: border.points.count / 3, planeInliers: 0,
                                           removedByPlane: 0, removedByCluster: 0, remaining: foregroundCount)
        }
        let (removedByPlane, left) = clearPoints(near: fit.plane, distance: options.planeDistance)
        stepFinished(.plane)
        let removedByCluster = switch options.clusterCleaning {
        case .dbscan: keepLargestDensityCluster(eps: options.clusterDistance, minPoints: options.clusterMinPoints)
        case .pixelNeighbours: keepLargestCluster(linkDistance: Float(options.clusterDistance))
        }
        stepFinished(.clusters)
        return BackgroundRemovalReport(plane: fit.plane, borderPoints: border.points.count / 3, planeInliers: fit.inliers,
                                       removedByPlane: removedByPlane, removedByCluster: removedByCluster,
                                       remaining: left - removedByCluster)
    }

    /// The foreground points of the ring of pixels within `width` of the image border,
    /// `points` [count · 3] in row-major pixel order (every point when the ring covers the
    /// image), and per point its tile: the index of the 16 × 16-pixel square of the image it lies
    /// in, 0 ..< `tileCount` (the RANSAC inlier counter's blocks).
    func borderPoints(width ring: Int) -> (points: [Float], tiles: [Int32], tileCount: Int) {
        let tileSide = 16, tilesPerRow = (width + tileSide - 1) / tileSide
        /// The ring's columns of row `y`: the whole row, or a left and a right part.
        func ringColumns(_ y: Int) -> (Range<Int>, Range<Int>) {
            y < ring || y >= height - ring
                ? (0..<width, width..<width) : (0..<min(ring, width), min(max(ring, width - ring), width)..<width)
        }
        let c = UnsafeBufferPointer(coordinates)
        func isForeground(_ i: Int) -> Bool { c[3 * i] != 0 && c[3 * i + 1] != 0 && c[3 * i + 2] != 0 }
        var count = 0
        for y in 0..<height {
            let (left, right) = ringColumns(y)
            for x in left where isForeground(y * width + x) { count += 1 }
            for x in right where isForeground(y * width + x) { count += 1 }
        }
        var tiles = [Int32](repeating: 0, count: count)
        let points = [Float](unsafeUninitializedCapacity: 3 * count) { points, initialized in
            tiles.withUnsafeMutableBufferPointer { tiles in
                var n = 0
                func take(_ y: Int, _ x: Int) {
                    let i = 3 * (y * width + x)
                    guard c[i] != 0 && c[i + 1] != 0 && c[i + 2] != 0 else { return }
                    (points[3 * n], points[3 * n + 1], points[3 * n + 2]) = (c[i], c[i + 1], c[i + 2])
                    tiles[n] = Int32(y / tileSide * tilesPerRow + x / tileSide)
                    n += 1
                }
                for y in 0..<height {
                    let (left, right) = ringColumns(y)
                    for x in left { take(y, x) }
                    for x in right { take(y, x) }
                }
            }
            initialized = 3 * count
        }
        return (points, tiles, tilesPerRow * ((height + tileSide - 1) / tileSide))
    }

    /// Clears the foreground points with |n·p + d| < `distance` (Float64) and returns how many,
    /// and how many foreground points are left. One pass over the pixels, in parallel over
    /// rows, in place.
    func clearPoints(near plane: Plane, distance: Double) -> (removed: Int, left: Int) {
        var tallies = [(removed: Int, left: Int)](repeating: (0, 0), count: cpuCount)
        let w = width, h = height
        // `plane.signedDistance` written out, two pixels per step in Float64 lanes (the same
        // IEEE operations per lane): ((nx·x + ny·y) + nz·z) + d, the order of its sum; |v| < t
        // as −t < v < t (also false for NaN).
        let (nx, ny, nz, d) = (plane.normal.x, plane.normal.y, plane.normal.z, plane.offset)
        let c = coordinates
        tallies.withUnsafeMutableBufferPointer { tallies in
            parallelWorkers(h, minimumChunk: 64) { worker, rows in
                var removed = SIMD2<Int64>(), left = SIMD2<Int64>()
                var i = rows.lowerBound * w
                let end = rows.upperBound * w
                while i < end {
                    let p = c.baseAddress! + 3 &* i
                    // The last pixel of an odd range pairs with itself and is counted once.
                    let second = i &+ 1 < end ? 3 : 0
                    let x = SIMD2(Double(p[0]), Double(p[second])), y = SIMD2(Double(p[1]), Double(p[second + 1]))
                    let z = SIMD2(Double(p[2]), Double(p[second + 2]))
                    let v = nx * x + ny * y + nz * z + d
                    let foreground = (x .!= 0) .& (y .!= 0) .& (z .!= 0)
                    var near = foreground .& (v .< distance) .& (v .> -distance)
                    var far = foreground .& .!near
                    if second == 0 { (near[1], far[1]) = (false, false) }
                    removed &+= SIMD2<Int64>().replacing(with: 1, where: near)
                    left &+= SIMD2<Int64>().replacing(with: 1, where: far)
                    if near[0] { (p[0], p[1], p[2]) = (0, 0, 0) }
                    if near[1] { (p[3], p[4], p[5]) = (0, 0, 0) }
                    i &+= 2
                }
                tallies[worker] = (Int(removed[0] &+ removed[1]), Int(left[0] &+ left[1]))
            }
        }
        return tallies.reduce((0, 0)) { ($0.removed + $1.removed, $0.left + $1.left) }
    }
}

/// The steps of `OrganizedCloud.removeBackground`, in the order they run.
public enum BackgroundRemovalStep: String, Sendable {
    /// Border ring, RANSAC plane fit and clearing of the points near the plane.
    case plane
    /// Cluster cleaning (DBSCAN or the pixel-neighbour rule), keeping the largest cluster.
    case clusters
}
