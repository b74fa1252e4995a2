/// The indices of `count` points stored [count, 3] at `points`, sorted along a Z-order
/// (Morton) curve over `box` with 1024 cells per axis, ties by index: points close in space
/// get close positions, so consecutive runs of the order have small bounding boxes.
/// Points outside `box` are clamped to its faces; an axis along which `box` is flat puts
/// every point in cell 0. Coordinates must be finite: then every cell position is finite
/// (Float64 holds any difference of Float32 values times 1024 / the smallest one), so the
/// conversion to an integer cannot trap.
func mortonOrder(_ points: UnsafePointer<Float>, count: Int, within box: BoundingBox) -> [Int] {
    let cells = 1024.0
    let lower = SIMD3<Double>(box.lower)
    let extent = SIMD3<Double>(box.upper) - lower
    let scale = (SIMD3<Double>(repeating: cells) / extent).replacing(with: 0, where: extent .<= 0)
    /// Spreads the 10 low bits of `v` to every third bit.
    func spread(_ v: UInt64) -> UInt64 {
        var x = v & 0x3FF
        x = (x | x << 16) & 0x0300_00FF
        x = (x | x << 8) & 0x0300_F00F
        x = (x | x << 4) & 0x030C_30C3
        x = (x | x << 2) & 0x0924_9249
        return x
    }
    var codes = [UInt32](repeating: 0, count: count)
    for i in 0..<count {
        var code: UInt64 = 0
        for axis in 0..<3 {
            let cell = min(cells - 1, max(0, (Double(points[3 * i + axis]) - lower[axis]) * scale[axis]))
            code |= spread(UInt64(cell)) << UInt64(axis)
        }
        codes[i] = UInt32(code)
    }
    // Stable LSD radix sort of the 30-bit codes, 10 bits a pass: ties keep index order.
    var order = Array(0..<count), sorted = order
    var buckets = [Int](repeating: 0, count: 1025)
    for shift in stride(from: 0, to: 30, by: 10) {
        buckets.withUnsafeMutableBufferPointer { b in
            b.update(repeating: 0)
            for i in order { b[Int(codes[i] >> UInt32(shift) & 0x3FF) + 1] += 1 }
            for d in 1...1024 { b[d] += b[d - 1] }
            for i in order {
                let digit = Int(codes[i] >> UInt32(shift) & 0x3FF)
                sorted[b[digit]] = i
                b[digit] += 1
            }
        }
        swap(&order, &sorted)
    }
    return order
}
