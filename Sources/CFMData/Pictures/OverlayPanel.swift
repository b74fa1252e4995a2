import CFMTensor
import Foundation

/// The picture a person reads for one frame, at the sensor's resolution: a header with the
/// verdict (PASS green, REJECT red), score, threshold and region count, then three tiles side by
/// side — the RGB image | height above the support plane | the anomaly map over a dimmed RGB with
/// the defect regions boxed and numbered (1 = largest, the order of the result's `regions`) —
/// each with a label and a colour legend underneath.
///
/// The anomaly colours are anchored at the decision threshold: map values at or below it are
/// muted (a faint blue over the dimmed image, growing towards the threshold), values above it are
/// hot (red at the threshold through orange and yellow to near white at twice the threshold), so
/// only what the verdict counts as defective stands out. Without a threshold (an uncalibrated
/// model) the anchor is half the frame's score, and the caption says so.
///
/// Frames larger than `maximumTileSide` on their long side are shown shrunk by the smallest
/// whole factor that fits (block averages), frames smaller than `minimumTileSide` magnified by the
/// smallest whole factor that reaches it (each sensor pixel a square), so the labels and legends
/// under the tiles fit; the RGB tile's label says by how much.
public enum OverlayPanel {
    /// Shortest long side of a tile in pixels: the widest tile label, "height above the plane,
    /// mm" at the smallest font scale, is 310 pixels wide.
    public static let minimumTileSide = 320
    /// Longest tile side in pixels.
    public static let maximumTileSide = 1024

    /// The panel of one frame: `rgb` as the sensor delivered it (H × W), `heights` above the
    /// support plane (nil: no plane was found or background removal was off), `map` the S × S
    /// smoothed anomaly map with image score `score`, `threshold` the decision threshold (score
    /// units), `truth` an optional ground-truth mask (H × W, non-zero = defect) drawn as a green
    /// contour, `title` a frame id or sample key printed top right.
    public static func render(rgb: RGBImage, heights: HeightField?, map: Tensor, score: Float, threshold: Float?,
                              truth: GrayImage? = nil, title: String = "") -> RGBImage {
        let (h, w) = (rgb.height, rgb.width)
        precondition(map.shape.count == 2 && map.shape[0] == map.shape[1], "map \(map.shape) is not square")
        precondition(heights.map { $0.height == h && $0.width == w } ?? true, "height field does not match the \(w)×\(h) frame")
        precondition(truth.map { $0.height == h && $0.width == w } ?? true, "ground truth does not match the \(w)×\(h) frame")
        let grid = SensorMapGrid(sensorHeight: h, sensorWidth: w, mapSize: map.shape[0])
        let anchor = threshold ?? score / 2
        let regions = threshold.map { DefectRegions(map: map, score: score, threshold: $0, grid: grid) }

        let scale = TileScale(height: h, width: w)
        let rgbTile = rgb.downscaled(by: scale.shrink).magnified(by: scale.magnify)
        let (th, tw) = (rgbTile.height, rgbTile.width)
        let f = fontScale(tileWidth: tw)
        let margin = 3 * f, gap = 6 * f, line = BitmapFont.cellHeight * f
        let headerHeight = BitmapFont.glyphHeight * 2 * f + 4 * f + 2 * margin
        let footerHeight = margin + line + 14 * f + margin    // label, bar, tick labels
        var panel = RGBImage(height: headerHeight + th + footerHeight, width: 3 * tw + 2 * margin + 2 * gap, colour: background)

        // Header: verdict badge, numbers, title.
        let verdict: (text: String, colour: RGBColour) = threshold.map {
            score > $0 ? ("REJECT", RGBColour(200, 35, 35)) : ("PASS", RGBColour(30, 150, 60))
        } ?? ("NO THRESHOLD", RGBColour(110, 110, 110))
        let badgeWidth = BitmapFont.width(of: verdict.text, scale: 2 * f) + 4 * f
        let badgeTop = margin, badgeBottom = headerHeight - margin
        panel.fill(x0: margin, y0: badgeTop, x1: margin + badgeWidth, y1: badgeBottom, verdict.colour)
        panel.draw(verdict.text, x: margin + 2 * f, y: badgeTop + 2 * f, scale: 2 * f, .white)
        var caption = String(format: "score %.3f", score)
        if let threshold, let regions {
            caption += String(format: " %@ threshold %.3f   ", score > threshold ? ">" : "<=", threshold)
            caption += regions.total == 0 ? "no region" : regions.total == 1 ? "1 region" : "\(regions.total) regions"
            if regions.total > regions.regions.count { caption += " (\(regions.regions.count) boxed)" }
        } else {
            caption += "   uncalibrated: colours anchored at half the score"
        }
        let textTop = (badgeTop + badgeBottom) / 2 - BitmapFont.glyphHeight * f / 2
        let captionLeft = margin + badgeWidth + 3 * f
        panel.draw(caption, x: captionLeft, y: textTop, scale: f, .white)
        let titleSpace = panel.width - margin - (captionLeft + BitmapFont.width(of: caption, scale: f) + 3 * gap)
        let shownTitle = fitted(title, width: titleSpace, scale: f)
        panel.draw(shownTitle, x: panel.width - margin - BitmapFont.width(of: shownTitle, scale: f), y: textTop, scale: f, subdued)

        // Tiles.
        let tileTop = headerHeight
        let left = (0..<3).map { margin + $0 * (tw + gap) }
        panel.paste(rgbTile, x: left[0], y: tileTop)
        let heightScale = heights.map { HeightScale($0) }
        if let heights, let heightScale {
            panel.paste(heightTile(heights, scale: scale, tileHeight: th, tileWidth: tw, colours: heightScale),
                        x: left[1], y: tileTop)
        } else {
            let text = "no support plane"
            panel.fill(x0: left[1], y0: tileTop, x1: left[1] + tw, y1: tileTop + th, missing)
            panel.draw(text, x: left[1] + (tw - BitmapFont.width(of: text, scale: f)) / 2, y: tileTop + th / 2, scale: f, subdued)
        }
        var heat = heatTile(rgbTile, map: DefectRegions.scoreUnits(map: map, score: score), grid: grid, scale: scale,
                            anchor: anchor)
        if let truth { drawContour(of: truth, scale: scale, on: &heat) }
        panel.paste(heat, x: left[2], y: tileTop)
        for (rank, region) in (regions?.regions ?? []).enumerated() {
            let (x0, y0) = (left[2] + scale.tileStart(region.xMin), tileTop + scale.tileStart(region.yMin))
            let (x1, y1) = (left[2] + scale.tileEnd(region.xMax), tileTop + scale.tileEnd(region.yMax))
            let t = max(2, f - 1)
            panel.outline(x0: x0 - t, y0: y0 - t, x1: x1 + t, y1: y1 + t, thickness: 1, .black)
            panel.outline(x0: x0, y0: y0, x1: x1, y1: y1, thickness: t, .white)
            let label = "\(rank + 1)"
            let labelY = y0 - t - 1 - line >= tileTop ? y0 - t - 1 - line : y1 + t + 1
            panel.fill(x0: x0 - t, y0: labelY, x1: x0 - t + BitmapFont.width(of: label, scale: f) + 2 * f,
                       y1: labelY + line, .black)
            panel.draw(label, x: x0 - t + f, y: labelY + f, scale: f, .white)
        }

        // Labels and legends.
        let labelTop = tileTop + th + margin, barTop = labelTop + line
        let sensorSize = "RGB \(w)x\(h) px" + (scale.shrink > 1 ? ", shown 1:\(scale.shrink)"
                                              : scale.magnify > 1 ? ", shown \(scale.magnify):1" : "")
        panel.draw(sensorSize, x: left[0], y: labelTop, scale: f, .white)
        if let heightScale {
            panel.draw("height above the plane, mm", x: left[1], y: labelTop, scale: f, .white)
            legend(on: &panel, x: left[1], y: barTop, width: tw, scale: f, colour: { heightColour($0) },
                   ticks: [(0, format(heightScale.bottom)), (0.5, format((heightScale.bottom + heightScale.top) / 2)),
                           (1, format(heightScale.top))])
        }
        panel.draw(truth == nil ? "anomaly, score units" : "anomaly; green = truth", x: left[2], y: labelTop, scale: f, .white)
        let legendBase = SIMD3<Float>(repeating: 95)
        legend(on: &panel, x: left[2], y: barTop, width: tw, scale: f,
               colour: { heatColour(base: legendBase, ratio: 2 * $0) },
               ticks: [(0, "0"), (0.5, (threshold == nil ? "score/2 " : "threshold ") + format(anchor)),
                       (1, format(2 * anchor))])
        return panel
    }

    /// How sensor pixels map onto tile pixels: `shrink` sensor pixels a side make one tile pixel
    /// (large frames), or one sensor pixel makes `magnify` tile pixels a side (small frames); one
    /// of the two is 1.
    struct TileScale: Equatable {
        var shrink: Int, magnify: Int

        init(height: Int, width: Int) {
            let side = max(height, width)
            shrink = (side + OverlayPanel.maximumTileSide - 1) / OverlayPanel.maximumTileSide
            magnify = shrink == 1 ? (OverlayPanel.minimumTileSide + side - 1) / side : 1
        }

        /// Sensor pixels per tile pixel.
        var sensorPerTile: Float { Float(shrink) / Float(magnify) }
        /// The tile pixel holding sensor pixel `sensor`.
        func tileStart(_ sensor: Int) -> Int { sensor * magnify / shrink }
        /// The first tile pixel after sensor pixels `0 ..< sensor`.
        func tileEnd(_ sensor: Int) -> Int { (sensor * magnify + shrink - 1) / shrink }
        /// The sensor pixels (of `count` along this axis) that tile pixel `tile` shows: a block of
        /// `shrink`, or the one pixel it magnifies.
        func sensorPixels(ofTile tile: Int, count: Int) -> Range<Int> {
            let first = tile * shrink / magnify
            return first..<min(count, max(first + 1, (tile + 1) * shrink / magnify))
        }
    }

    /// The font scale for tiles `tileWidth` pixels wide: 2 up to 449 pixels, one more per 300.
    static func fontScale(tileWidth: Int) -> Int { max(2, (tileWidth + 150) / 300) }

    /// `text`, or when it is wider than `width` pixels at `scale`, its end after "..": a frame
    /// id's tail is what tells frames apart.
    static func fitted(_ text: String, width: Int, scale: Int) -> String {
        guard BitmapFont.width(of: text, scale: scale) > width else { return text }
        var tail = Substring(text)
        while !tail.isEmpty && BitmapFont.width(of: ".." + tail, scale: scale) > width { tail = tail.dropFirst() }
        return tail.isEmpty ? "" : ".." + tail
    }

    static let background = RGBColour(24, 24, 28)
    static let missing = RGBColour(48, 48, 52)
    static let subdued = RGBColour(190, 190, 190)

    /// The anomaly colour of a pixel whose dimmed image colour is `base` (0 … 255) and whose map
    /// value is `ratio` × the anchor: muted blue up to 1, hot from just above 1 (red → orange →
    /// yellow → near white at 2 and beyond).
    static func heatColour(base: SIMD3<Float>, ratio: Float) -> SIMD3<Float> {
        guard ratio > 1 else {
            let cool = SIMD3<Float>(70, 110, 175), alpha = 0.45 * max(0, ratio)
            return base + (cool - base) * alpha
        }
        let hot = ramp([SIMD3(185, 20, 20), SIMD3(255, 105, 0), SIMD3(255, 205, 0), SIMD3(255, 255, 205)],
                       at: min(1, ratio - 1))
        return base + (hot - base) * 0.9
    }

    /// The height ramp (dark violet → blue → teal → green → yellow) at `fraction` ∈ [0, 1].
    static func heightColour(_ fraction: Float) -> SIMD3<Float> {
        ramp([SIMD3(68, 1, 84), SIMD3(59, 82, 139), SIMD3(33, 145, 140), SIMD3(94, 201, 98), SIMD3(253, 231, 37)],
             at: fraction)
    }

    /// Piecewise-linear interpolation of equally spaced `stops` at t ∈ [0, 1] (clipped).
    private static func ramp(_ stops: [SIMD3<Float>], at t: Float) -> SIMD3<Float> {
        let position = min(1, max(0, t)) * Float(stops.count - 1)
        let i = min(stops.count - 2, Int(position))
        return stops[i] + (stops[i + 1] - stops[i]) * (position - Float(i))
    }

    /// The anomaly tile: each tile pixel's centre is mapped onto the map grid (inverting the pad
    /// and resize of `grid`), the map (score units) is sampled bilinearly there and coloured by
    /// `heatColour` over the dimmed, half-desaturated image.
    private static func heatTile(_ image: RGBImage, map: [Float], grid: SensorMapGrid, scale: TileScale, anchor: Float) -> RGBImage {
        let size = grid.mapSize
        let perSensorPixel = Float(size) / Float(grid.side)
        func mapCoordinate(_ tileIndex: Int, padding: Int) -> (Int, Int, Float) {
            let sensorCentre = (Float(tileIndex) + 0.5) * scale.sensorPerTile  // in sensor pixels, from the frame's edge
            let position = min(Float(size - 1), max(0, (sensorCentre + Float(padding)) * perSensorPixel - 0.5))
            let lower = min(size - 2, Int(position))
            return (lower, lower + 1, position - Float(lower))
        }
        let columns = (0..<image.width).map { mapCoordinate($0, padding: grid.left) }
        var out = image
        for y in 0..<image.height {
            let (v0, v1, fy) = mapCoordinate(y, padding: grid.top)
            for x in 0..<image.width {
                let (u0, u1, fx) = columns[x]
                let top = map[v0 * size + u0] * (1 - fx) + map[v0 * size + u1] * fx
                let bottom = map[v1 * size + u0] * (1 - fx) + map[v1 * size + u1] * fx
                let value = top * (1 - fy) + bottom * fy
                let colour = image[x, y].vector
                let grey = (colour * SIMD3(0.299, 0.587, 0.114)).sum()
                let dimmed = 0.4 * colour + SIMD3(repeating: 0.2 * grey)
                out[x, y] = RGBColour(heatColour(base: dimmed, ratio: anchor > 0 ? value / anchor : 0))
            }
        }
        return out
    }

    /// The height tile: means of the measured heights (NaN-free) each tile pixel shows, coloured
    /// by `heightColour` over `colours`, heights below it (the table) in a darker shade of the
    /// ramp's start; tile pixels with no measurement are dark grey.
    private static func heightTile(_ field: HeightField, scale: TileScale, tileHeight: Int, tileWidth: Int,
                                   colours: HeightScale) -> RGBImage {
        var out = RGBImage(height: tileHeight, width: tileWidth, colour: missing)
        for ty in 0..<tileHeight {
            for tx in 0..<tileWidth {
                var sum: Float = 0, count = 0
                for y in scale.sensorPixels(ofTile: ty, count: field.height) {
                    for x in scale.sensorPixels(ofTile: tx, count: field.width) where !field.metres[y * field.width + x].isNaN {
                        sum += field.metres[y * field.width + x]
                        count += 1
                    }
                }
                guard count > 0 else { continue }
                let millimetres = 1000 * sum / Float(count)
                out[tx, ty] = RGBColour(millimetres < colours.bottom ? 0.5 * heightColour(0)
                                        : heightColour((millimetres - colours.bottom) / (colours.top - colours.bottom)))
            }
        }
        return out
    }

    /// Marks, in bright green, the tile pixels on either side of the mask's boundary (sampled
    /// at each tile pixel's first sensor pixel).
    private static func drawContour(of mask: GrayImage, scale: TileScale, on tile: inout RGBImage) {
        let (h, w) = (tile.height, tile.width)
        func inside(_ x: Int, _ y: Int) -> Bool? {
            guard x >= 0, y >= 0, x < w, y < h else { return nil }
            let row = scale.sensorPixels(ofTile: y, count: mask.height).lowerBound
            return mask.bytes[min(mask.height - 1, row) * mask.width
                              + min(mask.width - 1, scale.sensorPixels(ofTile: x, count: mask.width).lowerBound)] != 0
        }
        var marked = [Bool](repeating: false, count: h * w)
        for y in 0..<h {
            for x in 0..<w {
                let here = inside(x, y)!
                for (nx, ny) in [(x + 1, y), (x, y + 1)] where inside(nx, ny).map({ $0 != here }) ?? false {
                    marked[y * w + x] = true
                    marked[ny * w + nx] = true
                }
            }
        }
        for p in 0..<(h * w) where marked[p] { tile[p % w, p / w] = RGBColour(60, 255, 90) }
    }

    /// A horizontal colour bar `width` × 5·scale pixels at (x, y), coloured by `colour` over
    /// [0, 1], with tick marks and labels at the given fractions.
    private static func legend(on panel: inout RGBImage, x: Int, y: Int, width: Int, scale f: Int,
                               colour: (Float) -> SIMD3<Float>, ticks: [(Float, String)]) {
        for i in 0..<width {
            let c = RGBColour(colour((Float(i) + 0.5) / Float(width)))
            panel.fill(x0: x + i, y0: y, x1: x + i + 1, y1: y + 5 * f, c)
        }
        for (fraction, label) in ticks {
            let at = x + min(width - 1, Int(fraction * Float(width)))
            panel.fill(x0: at - f / 2, y0: y - f, x1: at - f / 2 + max(1, f / 2 + 1), y1: y + 6 * f, .white)
            let textWidth = BitmapFont.width(of: label, scale: f)
            let textX = min(x + width - textWidth, max(x, at - textWidth / 2))
            panel.draw(label, x: textX, y: y + 7 * f, scale: f, .white)
        }
    }

    /// The height tile's colour scale in millimetres: from the part's 0.5th to its 99.5th
    /// height percentile (heights above 1 mm; a few stray points do not set it), widened to whole
    /// steps of a round size (1, 2, 2.5, 5 × 10ⁿ, a quarter of the range — at least 1 mm — or more), so the relief of
    /// the part — dents, bumps — uses the whole ramp rather than the table-to-part jump.
    struct HeightScale: Equatable {
        var bottom: Float, top: Float

        init(bottom: Float, top: Float) { (self.bottom, self.top) = (bottom, top) }

        init(_ field: HeightField) {
            let part = field.metres.filter { $0 > 0.001 }.map { 1000 * $0 }.sorted()
            guard !part.isEmpty else { self.init(bottom: 0, top: 1); return }
            let low = part[Int(0.005 * Float(part.count - 1))], high = part[Int(0.995 * Float(part.count - 1))]
            let step = niceCeiling(max(high - low, 1) / 4)
            let bottom = (low / step).rounded(.down) * step
            self.init(bottom: bottom, top: max(bottom + step, (high / step).rounded(.up) * step))
        }
    }

    /// The smallest of 1, 2, 2.5, 5 × 10ⁿ at least `value` (> 0).
    static func niceCeiling(_ value: Float) -> Float {
        let decade = Float(pow(10, floor(log10(Double(max(value, 1e-6))))))
        return [1, 2, 2.5, 5, 10].map { $0 * decade }.first { $0 >= value * 0.9999 } ?? 10 * decade
    }

    /// A legend number: up to 3 significant digits, no trailing zeros.
    private static func format(_ value: Float) -> String {
        var text = String(format: value >= 100 ? "%.0f" : value >= 10 ? "%.1f" : "%.2f", value)
        while text.contains("."), text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }
}
