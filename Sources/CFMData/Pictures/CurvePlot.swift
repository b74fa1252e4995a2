import Foundation

/// A small line-plot rasteriser for the evaluation report (ROC and PRO curves): white
/// background, axes with ticks, grid lines and labels in `BitmapFont`, polylines clipped to the
/// axis ranges, optional reference diagonal, vertical markers and labelled points.
public struct CurvePlot: Sendable {
    /// One curve: points in data coordinates, in drawing order.
    public struct Series: Sendable {
        public var name: String, x: [Double], y: [Double], colour: RGBColour
        public init(name: String, x: [Double], y: [Double], colour: RGBColour) {
            precondition(x.count == y.count, "\(x.count) x but \(y.count) y values")
            (self.name, self.x, self.y, self.colour) = (name, x, y, colour)
        }
    }

    /// A labelled dot in data coordinates.
    public struct Point: Sendable {
        public var x: Double, y: Double, label: String, colour: RGBColour
        public init(x: Double, y: Double, label: String, colour: RGBColour) { (self.x, self.y, self.label, self.colour) = (x, y, label, colour) }
    }

    public var title: String
    public var xLabel: String, yLabel: String
    public var xRange: ClosedRange<Double>, yRange: ClosedRange<Double>
    public var xTicks: [Double], yTicks: [Double]
    public var series: [Series]
    /// Dashed vertical lines at these x values, labelled at the top.
    public var markers: [(x: Double, label: String)] = []
    public var points: [Point] = []
    /// Draw the chance line y = x.
    public var diagonal = false

    public init(title: String, xLabel: String, yLabel: String, xRange: ClosedRange<Double>, yRange: ClosedRange<Double>,
                xTicks: [Double], yTicks: [Double], series: [Series]) {
        (self.title, self.xLabel, self.yLabel) = (title, xLabel, yLabel)
        (self.xRange, self.yRange, self.xTicks, self.yTicks, self.series) = (xRange, yRange, xTicks, yTicks, series)
    }

    /// The plot as a `width` × `height` image; text at font scale `scale`.
    public func render(width: Int = 640, height: Int = 480, scale: Int = 2) -> RGBImage {
        let f = scale, line = BitmapFont.cellHeight * f
        var image = RGBImage(height: height, width: width, colour: .white)
        let ink = RGBColour(30, 30, 30), grid = RGBColour(225, 225, 225)
        // Plot area [left, right) × [top, bottom).
        let left = 2 * line + 6 * BitmapFont.cellWidth * f, right = width - 3 * BitmapFont.cellWidth * f
        let top = 3 * line, bottom = height - 3 * line
        func px(_ x: Double) -> Int { left + Int(((x - xRange.lowerBound) / (xRange.upperBound - xRange.lowerBound) * Double(right - 1 - left)).rounded()) }
        func py(_ y: Double) -> Int { bottom - 1 - Int(((y - yRange.lowerBound) / (yRange.upperBound - yRange.lowerBound) * Double(bottom - 1 - top)).rounded()) }

        image.draw(title, x: (width - BitmapFont.width(of: title, scale: f)) / 2, y: f * 2, scale: f, ink)
        for x in xTicks {
            image.fill(x0: px(x), y0: top, x1: px(x) + 1, y1: bottom, grid)
            image.fill(x0: px(x), y0: bottom, x1: px(x) + 1, y1: bottom + f * 3, ink)
            let label = Self.tickLabel(x, step: xTicks.count > 1 ? xTicks[1] - xTicks[0] : 1)
            image.draw(label, x: px(x) - BitmapFont.width(of: label, scale: f) / 2, y: bottom + f * 4, scale: f, ink)
        }
        for y in yTicks {
            image.fill(x0: left, y0: py(y), x1: right, y1: py(y) + 1, grid)
            image.fill(x0: left - f * 3, y0: py(y), x1: left, y1: py(y) + 1, ink)
            let label = Self.tickLabel(y, step: yTicks.count > 1 ? yTicks[1] - yTicks[0] : 1)
            image.draw(label, x: left - f * 4 - BitmapFont.width(of: label, scale: f),
                       y: py(y) - BitmapFont.glyphHeight * f / 2, scale: f, ink)
        }
        image.draw(xLabel, x: (left + right - BitmapFont.width(of: xLabel, scale: f)) / 2, y: bottom + f * 4 + line,
                   scale: f, ink)
        let rotated = Self.verticalText(yLabel, scale: f, colour: ink, background: .white)
        image.paste(rotated, x: f * 2, y: (top + bottom - rotated.height) / 2)

        if diagonal {
            let (lo, hi) = (max(xRange.lowerBound, yRange.lowerBound), min(xRange.upperBound, yRange.upperBound))
            dashed(&image, from: (px(lo), py(lo)), to: (px(hi), py(hi)), colour: RGBColour(160, 160, 160))
        }
        for marker in markers {
            dashed(&image, from: (px(marker.x), top), to: (px(marker.x), bottom - 1), colour: RGBColour(150, 150, 150))
            image.draw(marker.label, x: px(marker.x) - BitmapFont.width(of: marker.label, scale: f) / 2, y: top - line + f,
                       scale: f, RGBColour(110, 110, 110))
        }
        for s in series {
            var previous: (Int, Int)?
            for (x, y) in clipped(s) {
                let here = (px(x), py(y))
                if let previous { image.line(x0: previous.0, y0: previous.1, x1: here.0, y1: here.1, thickness: f + 1, s.colour) }
                previous = here
            }
        }
        for point in points where xRange.contains(point.x) && yRange.contains(point.y) {
            let (x, y) = (px(point.x), py(point.y))
            image.fill(x0: x - 3 * f, y0: y - 3 * f, x1: x + 3 * f + 1, y1: y + 3 * f + 1, ink)
            image.fill(x0: x - 2 * f, y0: y - 2 * f, x1: x + 2 * f + 1, y1: y + 2 * f + 1, point.colour)
            let textWidth = BitmapFont.width(of: point.label, scale: f)
            let textX = x + 5 * f + textWidth < right ? x + 5 * f : x - 5 * f - textWidth
            image.draw(point.label, x: textX, y: y + 2 * f, scale: f, ink)
        }
        // Axes last, over the curves' ends; the legend in the lower right.
        image.outline(x0: left, y0: top, x1: right, y1: bottom, thickness: 1, ink)
        for (i, s) in series.enumerated() where !s.name.isEmpty {
            let y = bottom - (series.count - i) * (line + f) - f
            let x = right - BitmapFont.width(of: s.name, scale: f) - 8 * f
            image.fill(x0: x - 6 * f, y0: y + 3 * f, x1: x - 2 * f, y1: y + 4 * f + 1, s.colour)
            image.draw(s.name, x: x, y: y, scale: f, ink)
        }
        return image
    }

    /// The series' points cut to the x range (interpolated where a segment leaves it) and
    /// clamped to the y range.
    private func clipped(_ s: Series) -> [(Double, Double)] {
        var out = [(Double, Double)]()
        for i in s.x.indices {
            let (x, y) = (s.x[i], s.y[i])
            if x > xRange.upperBound {
                if i > 0 && s.x[i - 1] < xRange.upperBound {
                    let t = (xRange.upperBound - s.x[i - 1]) / (x - s.x[i - 1])
                    out.append((xRange.upperBound, s.y[i - 1] + t * (y - s.y[i - 1])))
                }
                break
            }
            out.append((max(xRange.lowerBound, x), min(yRange.upperBound, max(yRange.lowerBound, y))))
        }
        return out
    }

    private func dashed(_ image: inout RGBImage, from a: (Int, Int), to b: (Int, Int), colour: RGBColour) {
        let steps = max(abs(b.0 - a.0), abs(b.1 - a.1))
        for i in stride(from: 0, through: steps, by: 1) where (i / 6) % 2 == 0 {
            let t = steps == 0 ? 0 : Double(i) / Double(steps)
            let x = a.0 + Int((Double(b.0 - a.0) * t).rounded()), y = a.1 + Int((Double(b.1 - a.1) * t).rounded())
            image.fill(x0: x, y0: y, x1: x + 2, y1: y + 2, colour)
        }
    }

    /// `text` rotated a quarter turn anticlockwise (read bottom to top).
    static func verticalText(_ text: String, scale: Int, colour: RGBColour, background: RGBColour) -> RGBImage {
        let lineHeight = BitmapFont.glyphHeight * scale
        var flat = RGBImage(height: lineHeight, width: max(1, BitmapFont.width(of: text, scale: scale)), colour: background)
        flat.draw(text, x: 0, y: 0, scale: scale, colour)
        var rotated = RGBImage(height: flat.width, width: flat.height, colour: background)
        for y in 0..<flat.height {
            for x in 0..<flat.width { rotated[y, flat.width - 1 - x] = flat[x, y] }
        }
        return rotated
    }

    /// A tick value with as many decimals as the tick step needs.
    static func tickLabel(_ value: Double, step: Double) -> String {
        let decimals = max(0, min(3, Int((-log10(abs(step)) - 1e-9).rounded(.up))))
        return String(format: "%.\(decimals)f", value)
    }
}
