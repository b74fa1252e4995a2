import CFMData
import CFMGeometry
import CFMTensor

/// Unit of a sensor's XYZ values.
public enum LengthUnit: String, Sendable, Codable, CaseIterable {
    case m, mm

    /// Factor to metres.
    public var metres: Float { self == .m ? 1 : 0.001 }
}

/// Every parameter of preprocessing. Training records it in the model
/// bundle's manifest (`preprocessing:`), and every command that scores with the bundle
/// preprocesses with the recorded options, so training and serving cannot differ.
public struct PreprocessOptions: Sendable, Equatable, Codable {
    /// Remove the support plane and stray clusters before resizing.
    public var removeBackground = true
    public var background = BackgroundRemovalOptions()
    /// Side of the model input.
    public var size = 224
    /// ImageNet normalisation of RGB in [0, 1].
    public var mean: [Float] = [0.485, 0.456, 0.406]
    public var std: [Float] = [0.229, 0.224, 0.225]

    public init() {}

    /// What a bundle without a `preprocessing:` section (`cfm-model-bundle/1`) was trained
    /// with: today's defaults but the 8-neighbour pixel rule for cluster cleaning (DBSCAN, the
    /// official rule, became the default later).
    public static var beforeDensityClusters: PreprocessOptions {
        var o = PreprocessOptions()
        o.background.clusterCleaning = .pixelNeighbours
        return o
    }

    /// The manifest's key names (flat, as in the serve config's `preprocessing:` section).
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case removeBackground = "background_removal", borderWidth = "border_width", ransacIterations = "ransac_iterations"
        case ransacSampleSize = "ransac_sample_size", inlierDistance = "inlier_distance", planeDistance = "plane_distance"
        case clusterDistance = "cluster_distance", clusterCleaning = "cluster_cleaning", clusterMinPoints = "cluster_min_points"
        case seed, size, mean, std
    }

    /// Every key is required — a recorded section is complete (a bundle without the section
    /// was trained with `beforeDensityClusters`, which `ModelManifest` supplies) — except the
    /// cluster-cleaning rule and its minimum, absent from sections written before DBSCAN
    /// existed: those bundles used the pixel rule.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        removeBackground = try c.decode(Bool.self, forKey: .removeBackground)
        background.borderWidth = try c.decode(Int.self, forKey: .borderWidth)
        background.iterations = try c.decode(Int.self, forKey: .ransacIterations)
        background.sampleSize = try c.decode(Int.self, forKey: .ransacSampleSize)
        background.inlierDistance = try c.decode(Double.self, forKey: .inlierDistance)
        background.planeDistance = try c.decode(Double.self, forKey: .planeDistance)
        background.clusterDistance = try c.decode(Double.self, forKey: .clusterDistance)
        background.clusterCleaning = try c.decodeIfPresent(ClusterCleaning.self, forKey: .clusterCleaning) ?? .pixelNeighbours
        background.clusterMinPoints = try c.decodeIfPresent(Int.self, forKey: .clusterMinPoints) ?? background.clusterMinPoints
        background.seed = try c.decode(UInt64.self, forKey: .seed)
        size = try c.decode(Int.self, forKey: .size)
        mean = try c.decode([Float].self, forKey: .mean)
        std = try c.decode([Float].self, forKey: .std)
        guard mean.count == 3, std.count == 3, std.allSatisfy({ $0 > 0 }), size > 0 else {
            throw DecodingError.dataCorruptedError(forKey: .std, in: c,
                                                   debugDescription: "size must be positive, mean and std three values with std > 0")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(removeBackground, forKey: .removeBackground)
        try c.encode(background.borderWidth, forKey: .borderWidth)
        try c.encode(background.iterations, forKey: .ransacIterations)
        try c.encode(background.sampleSize, forKey: .ransacSampleSize)
        try c.encode(background.inlierDistance, forKey: .inlierDistance)
        try c.encode(background.planeDistance, forKey: .planeDistance)
        try c.encode(background.clusterDistance, forKey: .clusterDistance)
        try c.encode(background.clusterCleaning, forKey: .clusterCleaning)
        try c.encode(background.clusterMinPoints, forKey: .clusterMinPoints)
        try c.encode(background.seed, forKey: .seed)
        try c.encode(size, forKey: .size)
        try c.encode(mean, forKey: .mean)
        try c.encode(std, forKey: .std)
    }
}

/// A frame ready for the detector, with what preprocessing did to it.
public struct PreprocessedFrame: Sendable {
    public var input: ModelInput
    /// The RGB image padded and resized to the model input (for overlays).
    public var rgb: RGBImage
    /// Background removal's account; nil when it was switched off.
    public var background: BackgroundRemovalReport?
    /// Foreground points after removal, at the sensor's resolution.
    public var foregroundPoints: Int
}

/// Sensor frame → model input (docs/architecture.md, "Inputs and preprocessing"): units to
/// metres, background removal at the sensor's resolution, centred square padding (edge
/// replication for RGB, zeros for XYZ), Pillow-bicubic RGB and PyTorch-nearest XYZ resizing,
/// ImageNet normalisation.
public struct Preprocessor: Sendable {
    public var options: PreprocessOptions

    public init(options: PreprocessOptions = PreprocessOptions()) { self.options = options }

    /// Preprocesses a pixel-registered pair: `rgb` and `cloud` [H, W, 3] in `unit`. A pixel with
    /// a NaN or infinite coordinate is a hole, like (0, 0, 0): sensors mark missing
    /// measurements either way.
    public func callAsFunction(rgb: RGBImage, cloud: Tensor, unit: LengthUnit = .m) throws -> PreprocessedFrame {
        let (h, w) = (rgb.height, rgb.width)
        guard cloud.shape == [h, w, 3] else {
            throw DetectorError.badInput("point cloud is \(cloud.shape), RGB image is \(h)×\(w): not pixel-registered")
        }
        guard cloud.scalars.contains(where: { !$0.isFinite }) else { return try process(rgb: rgb, cloud: cloud, unit: unit) }
        var holed = cloud
        for p in 0..<(h * w) where !(cloud.scalars[3 * p].isFinite && cloud.scalars[3 * p + 1].isFinite && cloud.scalars[3 * p + 2].isFinite) {
            (holed.scalars[3 * p], holed.scalars[3 * p + 1], holed.scalars[3 * p + 2]) = (0, 0, 0)
        }
        return try process(rgb: rgb, cloud: holed, unit: unit)
    }

    private func process(rgb: RGBImage, cloud: Tensor, unit: LengthUnit) throws -> PreprocessedFrame {
        let (h, w) = (rgb.height, rgb.width), s = options.size
        var organized = try OrganizedCloud(height: h, width: w, coordinates: unit == .m ? cloud.scalars : cloud.scalars.map { $0 * unit.metres })
        let report = options.removeBackground ? try organized.removeBackground(options: options.background) : nil
        let side = max(h, w)
        let squareCloud = Tensor(shape: [side, side, 3],
                                 scalars: padToSquare(organized.coordinates, height: h, width: w, channels: 3, .constant(0)))
        let xyz = nearestResize(squareCloud, outHeight: s, outWidth: s)
        let small = rgb.paddedToSquare().resized(height: s, width: s)
        var normalised = Tensor(shape: [3, s, s])
        for c in 0..<3 {
            let (mean, std) = (options.mean[c], options.std[c])
            for p in 0..<(s * s) { normalised.scalars[c * s * s + p] = (Float(small.bytes[3 * p + c]) / 255 - mean) / std }
        }
        return PreprocessedFrame(input: ModelInput(rgb: normalised, xyz: xyz), rgb: small, background: report,
                                 foregroundPoints: organized.foregroundCount)
    }
}
