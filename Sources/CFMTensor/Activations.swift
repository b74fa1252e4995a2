import Foundation

/// Exact (erf) GELU in place: `x · ½ · (1 + erf(x / √2))`, PyTorch's default `F.gelu`.
public func geluInPlace(_ x: UnsafeMutablePointer<Float>, count: Int) {
    parallelChunks(count, minimumChunk: 16384) { range in
        for i in range {
            let v = x[i]
            x[i] = 0.5 * v * (1 + erff(v * 0.70710678118654752))
        }
    }
}

/// ReLU in place.
public func reluInPlace(_ x: UnsafeMutablePointer<Float>, count: Int) {
    parallelChunks(count, minimumChunk: 65536) { range in
        for i in range where !(x[i] > 0) { x[i] = 0 }
    }
}

/// Softmax over each of `rows` rows of `cols` values (row stride `ld`), in place,
/// subtracting the row maximum first as PyTorch does.
public func softmaxRowsInPlace(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ld: Int? = nil) {
    let ld = ld ?? cols
    parallelChunks(rows, minimumChunk: max(1, 16384 / max(1, cols))) { range in
        for r in range {
            let row = x + r * ld
            var m = -Float.infinity
            for j in 0..<cols { m = max(m, row[j]) }
            var sum: Float = 0
            for j in 0..<cols {
                let e = expf(row[j] - m)
                row[j] = e
                sum += e
            }
            let inv = 1 / sum
            for j in 0..<cols { row[j] *= inv }
        }
    }
}
