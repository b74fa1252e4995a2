import CFMTensor

/// One connected region of the anomaly map above the decision threshold, in the units of the
/// sensor frame — the result message's `regions` entries (JSON keys `box`, `area`, `peak`).
public struct DefectRegion: Codable, Sendable, Equatable {
    /// [x_min, y_min, x_max, y_max] in sensor pixels, x = column, y = row, max exclusive: the
    /// bounding box of the sensor pixels the region's map pixels cover, clipped to the frame.
    public var box: [Int]
    /// Sensor pixels the region covers (exact: the sum of its map pixels' clipped footprints).
    public var area: Int
    /// The region's highest map value in score units (the scale of `score` and `threshold`).
    public var peak: Float

    public init(box: [Int], area: Int, peak: Float) {
        precondition(box.count == 4, "a box is [x_min, y_min, x_max, y_max], got \(box)")
        (self.box, self.area, self.peak) = (box, area, peak)
    }

    public var xMin: Int { box[0] }
    public var yMin: Int { box[1] }
    /// Exclusive.
    public var xMax: Int { box[2] }
    /// Exclusive.
    public var yMax: Int { box[3] }
}

/// Where a frame's defects are: the 8-connected regions of map pixels whose value in score units
/// exceeds the threshold, largest first, at most `limit` of them.
///
/// Area is counted exactly on the back-mapped footprint rather than as pixels × s²: each map
/// pixel covers a whole number of sensor columns and rows (`SensorMapGrid`), and near the frame's
/// edge part of it is padding, so pixels × s² would count padding and fractional pixels. With the
/// footprints a region's area is exactly the number of sensor pixels whose map pixel belongs to it.
///
/// A pass (score ≤ threshold) has no region; a reject has at least one, whose peak is the score —
/// unless the map's maximum lies entirely in the padding, where no sensor pixel can show it.
public struct DefectRegions: Sendable, Equatable {
    /// The largest regions by area (ties: higher peak, then top-left first), at most `limit`.
    public var regions: [DefectRegion]
    /// All regions found, including those beyond the cap.
    public var total: Int

    /// Regions at most this many are reported by default; the rest only counted.
    public static let defaultLimit = 16

    /// The regions of `map` [S, S] (the smoothed anomaly map, raw units) with image score `score`,
    /// above `threshold` (score units), on a sensor frame placed by `grid`.
    public init(map: Tensor, score: Float, threshold: Float, grid: SensorMapGrid, limit: Int = DefectRegions.defaultLimit) {
        let size = grid.mapSize
        precondition(map.shape == [size, size], "map \(map.shape) on a \(size)×\(size) grid")
        precondition(limit >= 0, "limit \(limit)")
        let values = Self.scoreUnits(map: map, score: score)
        let columns = (0..<size).map(grid.sensorColumns(ofMapColumn:))
        let rows = (0..<size).map(grid.sensorRows(ofMapRow:))
        // The same 8-connected labelling the PRO metric applies to ground-truth masks.
        let labelled = GroundTruthRegions(mask: values.map { $0 > threshold }, height: size, width: size)
        var found = (0..<labelled.count).map { _ in
            (xMin: Int.max, yMin: Int.max, xMax: Int.min, yMax: Int.min, area: 0, peak: -Float.infinity)
        }
        for v in 0..<size {
            for u in 0..<size {
                let label = Int(labelled.labels[v * size + u])
                guard label > 0 else { continue }
                found[label - 1].peak = max(found[label - 1].peak, values[v * size + u])
                let (xs, ys) = (columns[u], rows[v])
                guard !xs.isEmpty && !ys.isEmpty else { continue }
                found[label - 1].xMin = min(found[label - 1].xMin, xs.lowerBound)
                found[label - 1].xMax = max(found[label - 1].xMax, xs.upperBound)
                found[label - 1].yMin = min(found[label - 1].yMin, ys.lowerBound)
                found[label - 1].yMax = max(found[label - 1].yMax, ys.upperBound)
                found[label - 1].area += xs.count * ys.count
            }
        }
        let all = found.filter { $0.area > 0 }
            .map { DefectRegion(box: [$0.xMin, $0.yMin, $0.xMax, $0.yMax], area: $0.area, peak: $0.peak) }
            .sorted { a, b in
                if a.area != b.area { return a.area > b.area }
                if a.peak != b.peak { return a.peak > b.peak }
                return (a.yMin, a.xMin) < (b.yMin, b.xMin)
            }
        regions = Array(all.prefix(limit))
        total = all.count
    }

    /// `map` on the scale of the image score: m / max(map) · score, so the maximum is exactly
    /// `score` (docs/protocol.md); all zeros when the map is.
    public static func scoreUnits(map: Tensor, score: Float) -> [Float] {
        let peak = map.scalars.max() ?? 0
        guard peak > 0 else { return [Float](repeating: 0, count: map.count) }
        return map.scalars.map { $0 / peak * score }
    }
}
