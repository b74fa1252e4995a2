extension OrganizedCloudView {
    /// Clears (sets to (0, 0, 0)) every foreground point outside the largest connected
    /// cluster and returns how many it cleared.
    ///
    /// Two foreground pixels are linked when they are 8-neighbours on the pixel grid and
    /// their 3D distance is ≤ `linkDistance` metres; clusters are the connected components
    /// of that graph (union–find, iterative). Equal sizes go to the cluster whose first
    /// pixel comes first in row-major order. Background pixels are left as they are.
    func keepLargestCluster(linkDistance: Float) -> Int {
        let h = height, w = width, limit = linkDistance * linkDistance
        // parent[i] = −1 for background; roots are always the smallest pixel index of their
        // cluster, because unions attach the larger root below the smaller one.
        var parent = [Int32](repeating: -1, count: pixelCount)
        var removed = 0
        let c = coordinates
        parent.withUnsafeMutableBufferPointer { parent in
            func foreground(_ i: Int) -> Bool { c[3 * i] != 0 && c[3 * i + 1] != 0 && c[3 * i + 2] != 0 }
            func root(_ i: Int) -> Int {
                var i = i
                while Int(parent[i]) != i {
                    parent[i] = parent[Int(parent[i])]  // path halving
                    i = Int(parent[i])
                }
                return i
            }
            func link(_ a: Int, _ b: Int) {
                guard parent[b] >= 0 else { return }
                let dx = c[3 * a] - c[3 * b], dy = c[3 * a + 1] - c[3 * b + 1], dz = c[3 * a + 2] - c[3 * b + 2]
                guard dx * dx + dy * dy + dz * dz <= limit else { return }
                let ra = root(a), rb = root(b)
                if ra < rb { parent[rb] = Int32(ra) } else if rb < ra { parent[ra] = Int32(rb) }
            }
            for i in 0..<h * w where foreground(i) { parent[i] = Int32(i) }
            // Visit each link once: right, down-left, down, down-right.
            for y in 0..<h {
                for x in 0..<w where parent[y * w + x] >= 0 {
                    let i = y * w + x
                    if x + 1 < w { link(i, i + 1) }
                    if y + 1 < h {
                        if x > 0 { link(i, i + w - 1) }
                        link(i, i + w)
                        if x + 1 < w { link(i, i + w + 1) }
                    }
                }
            }
            // Sizes by root; compress every pixel to its root on the way.
            var size = [Int32](repeating: 0, count: h * w)
            var largest = -1
            for i in 0..<h * w where parent[i] >= 0 {
                let r = root(i)
                parent[i] = Int32(r)
                size[r] += 1
                if largest < 0 || size[r] > size[largest] || (size[r] == size[largest] && r < largest) { largest = r }
            }
            for i in 0..<h * w where parent[i] >= 0 && Int(parent[i]) != largest {
                c[3 * i] = 0
                c[3 * i + 1] = 0
                c[3 * i + 2] = 0
                removed += 1
            }
        }
        return removed
    }
}
