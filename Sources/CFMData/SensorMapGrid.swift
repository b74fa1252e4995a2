/// How the model's S × S map grid lies over a sensor frame of `sensorHeight` × `sensorWidth`
/// pixels (docs/protocol.md, "The anomaly map and sensor pixels"): the frame is padded centred
/// to a square of side max(H, W) — ⌊(side − W)/2⌋ columns on the left, ⌊(side − H)/2⌋ rows on
/// top — and the square is resized to S × S, so a map pixel spans s = side / S sensor pixels.
///
/// All conversions are exact integer arithmetic on s = side / S (no float rounding): sensor
/// pixel (x, y) lies in map pixel (⌊(x + left)·S / side⌋, ⌊(y + top)·S / side⌋), and map column
/// u covers the sensor columns x with that column index — [⌈u·side/S⌉ − left, ⌈(u+1)·side/S⌉ − left)
/// clipped to the frame. The footprints of distinct map pixels are disjoint and together tile the
/// frame; a map pixel entirely in the padding covers nothing.
public struct SensorMapGrid: Sendable, Equatable {
    public let sensorHeight: Int, sensorWidth: Int
    /// S, the side of the model's square map.
    public let mapSize: Int

    public init(sensorHeight: Int, sensorWidth: Int, mapSize: Int = 224) {
        precondition(sensorHeight > 0 && sensorWidth > 0 && mapSize > 0,
                     "a \(sensorWidth)×\(sensorHeight) frame on a \(mapSize)-pixel map")
        (self.sensorHeight, self.sensorWidth, self.mapSize) = (sensorHeight, sensorWidth, mapSize)
    }

    /// Side of the padded square, in sensor pixels.
    public var side: Int { max(sensorHeight, sensorWidth) }
    /// Padding columns left of the frame.
    public var left: Int { (side - sensorWidth) / 2 }
    /// Padding rows above the frame.
    public var top: Int { (side - sensorHeight) / 2 }

    /// Map column of sensor column `x` (0 ≤ x < W).
    public func mapColumn(ofSensorColumn x: Int) -> Int { (x + left) * mapSize / side }
    /// Map row of sensor row `y` (0 ≤ y < H).
    public func mapRow(ofSensorRow y: Int) -> Int { (y + top) * mapSize / side }

    /// Sensor columns covered by map column `u` (0 ≤ u < S); empty in the padding.
    public func sensorColumns(ofMapColumn u: Int) -> Range<Int> { span(u, offset: left, limit: sensorWidth) }
    /// Sensor rows covered by map row `v` (0 ≤ v < S); empty in the padding.
    public func sensorRows(ofMapRow v: Int) -> Range<Int> { span(v, offset: top, limit: sensorHeight) }

    /// [⌈i·side/S⌉ − offset, ⌈(i+1)·side/S⌉ − offset) ∩ [0, limit).
    private func span(_ i: Int, offset: Int, limit: Int) -> Range<Int> {
        func start(_ j: Int) -> Int { (j * side + mapSize - 1) / mapSize - offset }
        let lower = min(max(start(i), 0), limit), upper = min(max(start(i + 1), 0), limit)
        return lower..<max(lower, upper)
    }
}
