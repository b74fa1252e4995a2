/// Points in struct-of-arrays layout for vectorised loops: one [3, stride] buffer whose rows
/// are the x, y and z columns. `stride` is the point count rounded up to a whole number
/// of `lanes`-wide SIMD vectors; the padding columns hold zeros.
struct PointColumns {
    /// SIMD width the loops over the columns use.
    static let lanes = 16
    typealias Vector = SIMD16<Float>

    let count: Int
    let stride: Int
    /// [3 · stride]: x column, then y, then z.
    var values: [Float]

    /// Transposes `count` points stored [count, 3] at `points`, minus `origin` and times
    /// `scale` (see `centred`); column i holds point `order[i]` when an order is given.
    init(_ points: UnsafePointer<Float>, count: Int, order: [Int]? = nil, origin: SIMD3<Float> = .zero, scale: Double = 1) {
        self.count = count
        stride = (count + Self.lanes - 1) / Self.lanes * Self.lanes
        values = [Float](repeating: 0, count: 3 * stride)
        values.withUnsafeMutableBufferPointer { v in
            for i in 0..<count {
                let source = points + 3 * (order?[i] ?? i)
                for axis in 0..<3 { v[axis * stride + i] = Self.centred(source[axis], origin[axis], scale: scale) }
            }
        }
    }

    /// `(value − origin) · scale` in Float32. With `scale` 1 this is the Float32 difference
    /// itself; a smaller power of two (exact in Float64) brings differences that would
    /// overflow Float32 (e.g. 3e38 − (−3e38)) back into range, computed in Float64 and
    /// rounded to Float32 at the end.
    @inline(__always)
    static func centred(_ value: Float, _ origin: Float, scale: Double) -> Float {
        scale == 1 ? value - origin : Float((Double(value) - Double(origin)) * scale)
    }

    /// Point `i` (after centring).
    func point(_ i: Int) -> SIMD3<Float> {
        SIMD3(values[i], values[stride + i], values[2 * stride + i])
    }

    /// Number of SIMD vectors per column.
    var vectorCount: Int { stride / Self.lanes }
}

extension UnsafePointer where Pointee == Float {
    /// The `lanes` floats starting at element `vector · lanes`.
    @inline(__always)
    func vector(_ vector: Int) -> PointColumns.Vector {
        UnsafeRawPointer(self + vector * PointColumns.lanes).loadUnaligned(as: PointColumns.Vector.self)
    }
}

extension UnsafeMutablePointer where Pointee == Float {
    @inline(__always)
    func vector(_ vector: Int) -> PointColumns.Vector {
        UnsafePointer(self).vector(vector)
    }

    @inline(__always)
    func storeVector(_ value: PointColumns.Vector, at vector: Int) {
        UnsafeMutableRawPointer(self + vector * PointColumns.lanes).storeBytes(of: value, as: PointColumns.Vector.self)
    }
}
