import CFMTensor

/// A point whose GEMM-form squared distance to the query is small enough to matter.
struct ApproximateCandidate: Comparable {
    var distance: Float
    var index: Int32

    static func < (a: Self, b: Self) -> Bool { (a.distance, a.index) < (b.distance, b.index) }
}

/// A candidate with its squared distance computed exactly (Float64 from the inputs).
struct ExactCandidate: Comparable {
    var distance: Double
    var index: Int32

    static func < (a: Self, b: Self) -> Bool { (a.distance, a.index) < (b.distance, b.index) }
}

/// Exact k-nearest-neighbour search of `queryCount` queries among `pointCount` points
/// (both stored [count, 3]), writing [queryCount, k] point indices and squared distances,
/// ascending by (exact squared distance, point index).
///
/// Screening uses the GEMM form ‖p‖² − 2·q·p (‖q‖² is constant per query) on coordinates
/// centred on the points' mean, in blocks of 64 queries × 2048 points, so the distance tile
/// stays in L2. That form has a rounding error below `margin(q) = η·(‖q‖ + R)²`, with R the
/// largest centred ‖p‖ and η = 2⁻¹⁹ (≈ 4× the worst case of centring, two 3-term norms, a
/// 3-term dot product and two additions at unit roundoff 2⁻²⁴). Every point within `2·margin`
/// of the k-th smallest screened value is kept, which provably includes every point whose
/// exact distance is ≤ the exact k-th distance; those are re-ranked by their exact Float64
/// (p − q)². So the result is the exact KNN, ties to the lower index, not the Float32 one.
func searchNearest(
    queries: UnsafePointer<Float>, queryCount: Int,
    points: UnsafePointer<Float>, pointCount: Int, k: Int,
    indices: UnsafeMutablePointer<Int>, squaredDistances: UnsafeMutablePointer<Float>
) {
    precondition(k >= 1 && pointCount >= k, "k = \(k) of \(pointCount) points")
    let blockSize = 64, tileWidth = 2048
    let lanes = PointColumns.lanes
    let initialCapacity = max(4 * k, 64)

    var sum = SIMD3<Double>.zero
    for i in 0..<pointCount {
        sum += SIMD3(Double(points[3 * i]), Double(points[3 * i + 1]), Double(points[3 * i + 2]))
    }
    let origin = SIMD3<Float>(sum / Double(pointCount))
    let columns = PointColumns(points, count: pointCount, origin: origin)
    // ‖p‖² of the centred points; +∞ in the padding keeps it from ever being a candidate.
    var norms = [Float](repeating: .infinity, count: columns.stride)
    var largestNorm: Float = 0
    columns.values.withUnsafeBufferPointer { c in
        for i in 0..<pointCount {
            let x = c[i], y = c[columns.stride + i], z = c[2 * columns.stride + i]
            norms[i] = x * x + y * y + z * z
            largestNorm = max(largestNorm, norms[i])
        }
    }
    let radius = Double(largestNorm).squareRoot()
    var centredQueries = [Float](repeating: 0, count: 3 * queryCount)
    for i in 0..<3 * queryCount { centredQueries[i] = queries[i] - origin[i % 3] }

    columns.values.withUnsafeBufferPointer { c in
    norms.withUnsafeBufferPointer { normBuffer in
    centredQueries.withUnsafeBufferPointer { cq in
        let columnBase = c.baseAddress!, normBase = normBuffer.baseAddress!, queryBase = cq.baseAddress!
        parallelWorkers((queryCount + blockSize - 1) / blockSize) { _, blocks in
            let tile = UnsafeMutablePointer<Float>.allocate(capacity: blockSize * tileWidth)
            defer { tile.deallocate() }
            let lists = (0..<blockSize).map { _ in ScratchBuffer<ApproximateCandidate>(capacity: initialCapacity) }
            let exact = ScratchBuffer<ExactCandidate>(capacity: initialCapacity)
            var limits = [Float](repeating: 0, count: blockSize)
            var margins = [Double](repeating: 0, count: blockSize)

            /// Keeps the candidates within the margin of the k-th smallest and returns that limit.
            func compact(_ list: ScratchBuffer<ApproximateCandidate>, margin: Double) -> Float {
                var held = list.elements
                held.partition(aroundNth: k - 1)
                let limit = Float(Double(held[k - 1].distance) + margin).nextUp
                var kept = 0
                for i in 0..<held.count where held[i].distance <= limit {
                    held[kept] = held[i]
                    kept += 1
                }
                list.truncate(to: kept)
                if kept > list.capacity / 2 { list.grow() }
                return limit
            }

            for block in blocks {
                let first = block * blockSize, size = min(blockSize, queryCount - first)
                for q in 0..<size {
                    lists[q].removeAll()
                    limits[q] = .greatestFiniteMagnitude
                    let p = queryBase + 3 * (first + q)
                    let norm = Double(p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).squareRoot()
                    margins[q] = 2 * 0x1p-19 * (norm + radius) * (norm + radius) * (1 + 0x1p-20)
                }
                for start in stride(from: 0, to: columns.stride, by: tileWidth) {
                    let width = min(tileWidth, columns.stride - start)
                    gemm(m: size, n: width, k: 3, alpha: -2,
                         a: queryBase + 3 * first, lda: 3,
                         b: columnBase + start, ldb: columns.stride,
                         c: tile, ldc: width)
                    let tileNorms = normBase + start
                    for q in 0..<size {
                        let row = UnsafePointer(tile + q * width), list = lists[q]
                        var limit = PointColumns.Vector(repeating: limits[q])
                        for v in 0..<width / lanes {
                            let distance = row.vector(v) + tileNorms.vector(v)
                            let inside = distance .<= limit
                            guard any(inside) else { continue }
                            for lane in 0..<lanes where inside[lane] {
                                if list.isFull {
                                    limits[q] = compact(list, margin: margins[q])
                                    limit = PointColumns.Vector(repeating: limits[q])
                                }
                                list.append(ApproximateCandidate(
                                    distance: distance[lane], index: Int32(truncatingIfNeeded: start + v * lanes + lane)))
                            }
                        }
                    }
                }
                for q in 0..<size {
                    let limit = compact(lists[q], margin: margins[q])
                    let query = queries + 3 * (first + q)
                    let qx = Double(query[0]), qy = Double(query[1]), qz = Double(query[2])
                    exact.removeAll()
                    for candidate in lists[q].elements where candidate.distance <= limit {
                        let p = points + 3 * Int(candidate.index)
                        let dx = Double(p[0]) - qx, dy = Double(p[1]) - qy, dz = Double(p[2]) - qz
                        exact.append(ExactCandidate(distance: dx * dx + dy * dy + dz * dz, index: candidate.index))
                    }
                    var ranked = exact.elements
                    ranked.partition(aroundNth: k - 1)
                    ranked.sortPrefix(k)
                    let row = (first + q) * k
                    for j in 0..<k {
                        indices[row + j] = Int(ranked[j].index)
                        squaredDistances[row + j] = Float(ranked[j].distance)
                    }
                }
            }
        }
    }
    }
    }
}
