import CFMTensor

/// How a test image's ground-truth mask is brought onto the model's square map grid before the
/// pixel metrics judge the map (docs/evaluation.md, "Ground truth on the map grid").
public enum GroundTruthResampling: String, CaseIterable, Sendable, Codable {
    /// The official evaluation protocol (the default): the mask padded to a centred square by
    /// replicating its edge pixels, resized with Pillow's NEAREST (pixel-centre sampling,
    /// `pillowNearestSourceIndices`), then binarised as value / 255 > ½ (bytes ≥ 128 anomalous).
    case official
    /// The point cloud's geometry: centred zero padding (padding is anomaly-free), PyTorch
    /// `nearest` (⌊dst · in/out⌋), any non-zero byte anomalous. Each map pixel is then judged by
    /// the mask of the sensor pixel its 3D point came from.
    case pointCloud = "point-cloud"

    /// One line for `metrics.json`: what was done to the masks, for a `size` × `size` map.
    public func summary(size: Int) -> String {
        switch self {
        case .official:
            "official: edge-replicated square, Pillow NEAREST to \(size)×\(size), anomalous where value/255 > 0.5"
        case .pointCloud:
            "point-cloud: centred zero padding to a square, PyTorch-nearest to \(size)×\(size), anomalous where non-zero"
        }
    }
}

extension GrayImage {
    /// The ground-truth mask on the model's `size` × `size` map grid as the evaluation judges it
    /// (0 = anomaly-free, 255 = anomalous), resampled by `resampling` — the one function the
    /// evaluation calls for a mask.
    public func evaluationMask(size: Int, resampling: GroundTruthResampling = .official) -> GrayImage {
        switch resampling {
        case .pointCloud:
            return resizedMask(to: size)
        case .official:
            precondition(height > 0 && width > 0 && size > 0, "cannot resample a \(height)×\(width) mask to \(size)×\(size)")
            let side = max(height, width)
            let square = padToSquare(bytes, height: height, width: width, channels: 1, .replicateEdge)
            let indices = pillowNearestSourceIndices(inSize: side, outSize: size)
            var out = [UInt8]()
            out.reserveCapacity(size * size)
            for sy in indices {
                for sx in indices { out.append(square[sy * side + sx] >= 128 ? 255 : 0) }
            }
            return GrayImage(height: size, width: size, bytes: out)
        }
    }
}
