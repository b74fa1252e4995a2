import CFMModels
import CFMTensor

extension AnomalyDetector {
    /// The tensors of `cfm infer --dump` / `cfm extract` for one frame:
    /// `rgb_input`, `xyz_input`, `rgb_features` [768,28,28], `rgb_map` [768,224,224],
    /// `centers` [G,3], `center_indices` [G], `groups` [G,k], `xyz_features` [D3D,G],
    /// `xyz_map` [D3D,224,224], `foreground` [224,224], and with a detection `psi2d`,
    /// `psi3d`, `anomaly_map` [224,224] and `score` [1].
    ///
    /// Materialises the full per-pixel maps, which the hot path never does.
    public func dump(_ input: ModelInput, _ features: FrameFeatures, _ detection: Detection?) -> [String: Tensor] {
        let s = inputSize, g = pointMAE.config.groups, d3 = pointMAE.featureDim
        let rgbFeatures = VisionTransformer.channelMajor(features.rgbTokens, grid: vit.config.grid)
        var foreground = Tensor(shape: [s, s])
        for pixel in features.foreground.pixelIndices { foreground.scalars[pixel] = 1 }
        let xyzFeatures = Tensor(shape: [d3, g], scalars: (0..<(d3 * g)).map { features.pointFeatures.scalars[($0 % g) * d3 + $0 / g] })
        var out: [String: Tensor] = [
            "rgb_input": input.rgb, "xyz_input": input.xyz,
            "rgb_features": rgbFeatures, "rgb_map": vit.upsample(rgbFeatures),
            "centers": features.centers.centres,
            "center_indices": Tensor(shape: [g], scalars: features.centers.indices.map(Float.init)),
            "groups": Tensor(shape: [g, pointMAE.config.members], scalars: features.groups.indices.map(Float.init)),
            "xyz_features": xyzFeatures,
            "xyz_map": pixelCombinations(features).xyz.denseMap(from: features.pointFeatures, width: d3),
            "foreground": foreground,
        ]
        if let detection {
            out["psi2d"] = detection.psi2d
            out["psi3d"] = detection.psi3d
            out["anomaly_map"] = detection.anomalyMap
            out["score"] = Tensor(shape: [1], scalars: [detection.score])
        }
        return out
    }
}
