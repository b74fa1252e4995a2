/// An 8-bit RGB colour.
public struct RGBColour: Sendable, Equatable {
    public var r: UInt8, g: UInt8, b: UInt8

    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { (self.r, self.g, self.b) = (r, g, b) }

    /// From channel values in 0 … 255 (rounded, clipped).
    public init(_ rgb: SIMD3<Float>) {
        let c = (rgb.clamped(lowerBound: .zero, upperBound: SIMD3(repeating: 255)) + 0.5)
        self.init(UInt8(c.x), UInt8(c.y), UInt8(c.z))
    }

    /// Channel values as floats in 0 … 255.
    public var vector: SIMD3<Float> { SIMD3(Float(r), Float(g), Float(b)) }

    public static let white = RGBColour(255, 255, 255)
    public static let black = RGBColour(0, 0, 0)
}

/// Raster drawing for the pictures cfm writes (overlay panels, plots): every operation clips to
/// the image, coordinates are pixels (x = column, y = row), rectangles are [x0, x1) × [y0, y1).
extension RGBImage {
    /// An image of one colour.
    public init(height: Int, width: Int, colour: RGBColour) {
        var bytes = [UInt8](repeating: 0, count: height * width * 3)
        for p in 0..<(height * width) { (bytes[3 * p], bytes[3 * p + 1], bytes[3 * p + 2]) = (colour.r, colour.g, colour.b) }
        self.init(height: height, width: width, bytes: bytes)
    }

    /// The colour of pixel (x, y), which must lie inside the image.
    public subscript(x: Int, y: Int) -> RGBColour {
        get {
            let p = 3 * (y * width + x)
            return RGBColour(bytes[p], bytes[p + 1], bytes[p + 2])
        }
        set {
            let p = 3 * (y * width + x)
            (bytes[p], bytes[p + 1], bytes[p + 2]) = (newValue.r, newValue.g, newValue.b)
        }
    }

    /// Fills [x0, x1) × [y0, y1).
    public mutating func fill(x0: Int, y0: Int, x1: Int, y1: Int, _ colour: RGBColour) {
        for y in max(0, y0)..<max(max(0, y0), min(height, y1)) {
            for x in max(0, x0)..<max(max(0, x0), min(width, x1)) { self[x, y] = colour }
        }
    }

    /// Outlines [x0, x1) × [y0, y1) with a band `thickness` pixels wide just outside it, so the
    /// outline never covers what it frames.
    public mutating func outline(x0: Int, y0: Int, x1: Int, y1: Int, thickness: Int, _ colour: RGBColour) {
        let t = thickness
        fill(x0: x0 - t, y0: y0 - t, x1: x1 + t, y1: y0, colour)
        fill(x0: x0 - t, y0: y1, x1: x1 + t, y1: y1 + t, colour)
        fill(x0: x0 - t, y0: y0, x1: x0, y1: y1, colour)
        fill(x0: x1, y0: y0, x1: x1 + t, y1: y1, colour)
    }

    /// A straight line from (x0, y0) to (x1, y1) (Bresenham) drawn with a square brush
    /// `thickness` pixels wide.
    public mutating func line(x0: Int, y0: Int, x1: Int, y1: Int, thickness: Int, _ colour: RGBColour) {
        let (dx, dy) = (abs(x1 - x0), -abs(y1 - y0))
        let (sx, sy) = (x0 < x1 ? 1 : -1, y0 < y1 ? 1 : -1)
        var (x, y, error) = (x0, y0, dx + dy)
        let low = (thickness - 1) / 2
        while true {
            fill(x0: x - low, y0: y - low, x1: x - low + thickness, y1: y - low + thickness, colour)
            if x == x1 && y == y1 { break }
            let twice = 2 * error
            if twice >= dy { error += dy; x += sx }
            if twice <= dx { error += dx; y += sy }
        }
    }

    /// `text` in `BitmapFont` with its top-left corner at (x, y), each font pixel a
    /// `scale` × `scale` square.
    public mutating func draw(_ text: String, x: Int, y: Int, scale: Int, _ colour: RGBColour) {
        for (i, character) in text.enumerated() {
            let left = x + i * BitmapFont.cellWidth * scale
            for row in 0..<BitmapFont.glyphHeight {
                for column in 0..<BitmapFont.glyphWidth where BitmapFont.isSet(character, column: column, row: row) {
                    fill(x0: left + column * scale, y0: y + row * scale,
                         x1: left + (column + 1) * scale, y1: y + (row + 1) * scale, colour)
                }
            }
        }
    }

    /// Copies `image` with its top-left corner at (x, y).
    public mutating func paste(_ image: RGBImage, x: Int, y: Int) {
        for row in max(0, -y)..<max(max(0, -y), min(image.height, height - y)) {
            let columns = max(0, -x)..<max(max(0, -x), min(image.width, width - x))
            guard !columns.isEmpty else { return }
            let source = 3 * (row * image.width + columns.lowerBound)
            let target = 3 * ((y + row) * width + x + columns.lowerBound)
            bytes.replaceSubrange(target..<(target + 3 * columns.count),
                                  with: image.bytes[source..<(source + 3 * columns.count)])
        }
    }

    /// The image shrunk `factor` times by averaging factor × factor blocks (the last row and
    /// column of blocks may be partial): ⌈height / factor⌉ × ⌈width / factor⌉.
    public func downscaled(by factor: Int) -> RGBImage {
        precondition(factor >= 1, "downscale factor \(factor)")
        guard factor > 1 else { return self }
        let (outHeight, outWidth) = ((height + factor - 1) / factor, (width + factor - 1) / factor)
        var out = [UInt8](repeating: 0, count: outHeight * outWidth * 3)
        for oy in 0..<outHeight {
            let rows = (oy * factor)..<min(height, (oy + 1) * factor)
            for ox in 0..<outWidth {
                let columns = (ox * factor)..<min(width, (ox + 1) * factor)
                var sum = SIMD3<Int>.zero
                for y in rows {
                    for x in columns {
                        let p = 3 * (y * width + x)
                        sum &+= SIMD3(Int(bytes[p]), Int(bytes[p + 1]), Int(bytes[p + 2]))
                    }
                }
                let count = rows.count * columns.count
                for c in 0..<3 { out[3 * (oy * outWidth + ox) + c] = UInt8((sum[c] + count / 2) / count) }
            }
        }
        return RGBImage(height: outHeight, width: outWidth, bytes: out)
    }

    /// The image grown `factor` times, each pixel a factor × factor square (nearest):
    /// (height · factor) × (width · factor).
    public func magnified(by factor: Int) -> RGBImage {
        precondition(factor >= 1, "magnification factor \(factor)")
        guard factor > 1 else { return self }
        let outWidth = width * factor
        var out = [UInt8](repeating: 0, count: height * factor * outWidth * 3)
        for y in 0..<(height * factor) {
            for x in 0..<outWidth {
                let (target, source) = (3 * (y * outWidth + x), 3 * ((y / factor) * width + x / factor))
                (out[target], out[target + 1], out[target + 2]) = (bytes[source], bytes[source + 1], bytes[source + 2])
            }
        }
        return RGBImage(height: height * factor, width: outWidth, bytes: out)
    }
}
