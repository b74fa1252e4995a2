import CFMTensor

/// The ground truth of one test image as the MVTec protocol sees it: its anomalous pixels
/// split into 8-connected regions (SciPy's `ndimage.label` with a 3 × 3 structure of ones).
public struct GroundTruthRegions: Sendable, Equatable {
    public let height: Int, width: Int
    /// Per pixel, row-major: 0 = anomaly-free, k = region k (1-based, numbered in raster
    /// order of each region's first pixel).
    public let labels: [Int32]
    /// Pixels of region k at index k − 1.
    public let sizes: [Int]

    /// The regions of `mask` (true = anomalous), `height` × `width`, row-major.
    public init(mask: [Bool], height: Int, width: Int) {
        precondition(mask.count == height * width, "\(mask.count) mask pixels for \(height)×\(width)")
        (self.height, self.width) = (height, width)
        var labels = [Int32](repeating: 0, count: mask.count)
        var sizes = [Int]()
        var stack = [Int]()
        for start in 0..<mask.count where mask[start] && labels[start] == 0 {
            let label = Int32(sizes.count + 1)
            labels[start] = label
            stack.append(start)
            var size = 0
            while let p = stack.popLast() {
                size += 1
                let (y, x) = (p / width, p % width)
                for yy in max(0, y - 1)...min(height - 1, y + 1) {
                    for xx in max(0, x - 1)...min(width - 1, x + 1) {
                        let q = yy * width + xx
                        if mask[q] && labels[q] == 0 {
                            labels[q] = label
                            stack.append(q)
                        }
                    }
                }
            }
            sizes.append(size)
        }
        self.labels = labels
        self.sizes = sizes
    }

    /// The regions of a ground-truth PNG (0 = anomaly-free, anything else anomalous).
    public init(mask: GrayImage) {
        self.init(mask: mask.bytes.map { $0 != 0 }, height: mask.height, width: mask.width)
    }

    /// Number of regions.
    public var count: Int { sizes.count }
    /// Whether the image has no anomalous pixel.
    public var isNominal: Bool { sizes.isEmpty }
    /// Anomalous pixels.
    public var anomalousPixels: Int { sizes.reduce(0, +) }
}

extension GrayImage {
    /// The mask brought onto the model's `size` × `size` grid exactly as the point cloud is
    /// (docs/architecture.md, "Inputs and preprocessing"), so each map pixel is judged by the
    /// ground truth of the sensor pixel its 3D point came from: centred zero padding to a
    /// square (padding is anomaly-free), then PyTorch-`nearest` resizing (source index
    /// ⌊dst · in / out⌋). Values stay 0 / 255.
    ///
    /// (The CFM and M3DM reference code resizes masks with PIL's NEAREST, which samples
    /// ⌊(dst + ½) · in / out⌋ — up to one sensor pixel away; MVTec 3D-AD images are square, so
    /// no padding happens there.)
    public func resizedMask(to size: Int) -> GrayImage {
        let side = max(height, width)
        let square = padToSquare(bytes.map { $0 != 0 ? UInt8(255) : 0 }, height: height, width: width, channels: 1,
                                 .constant(0))
        let indices = nearestSourceIndices(inSize: side, outSize: size)
        var out = [UInt8]()
        out.reserveCapacity(size * size)
        for sy in indices {
            for sx in indices { out.append(square[sy * side + sx]) }
        }
        return GrayImage(height: size, width: size, bytes: out)
    }
}
