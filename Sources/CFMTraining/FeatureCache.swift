import CFMDetector
import CFMTensor
import Foundation

/// Frozen extractor outputs of training samples, cached on disk: extraction dominates the
/// cost of a training run and never changes for a given file, tier and extractor.
///
/// One safetensors file per sample, named by a hash of everything the features depend on
/// (extractor checksums, tier, BatchNorm mode, preprocessing, the sample files' paths,
/// sizes and modification times).
public struct FeatureCache: Sendable {
    public let directory: URL
    /// Identifies the extractors + settings; part of every key.
    public let context: String

    public init(directory: URL, context: String) {
        (self.directory, self.context) = (directory, context)
    }

    /// Cached outputs for `files`, or nil.
    public func load(_ files: [URL]) -> CachedFeatures? {
        guard let key = try? key(files), let st = try? SafeTensors(contentsOf: directory.appendingPathComponent(key)) else { return nil }
        return try? CachedFeatures(st)
    }

    /// Stores `features` for `files` (best effort: a cache that cannot be written is skipped).
    public func store(_ features: CachedFeatures, for files: [URL]) {
        guard let key = try? key(files) else { return }
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try? SafeTensors.write(features.tensors, to: directory.appendingPathComponent(key))
    }

    private func key(_ files: [URL]) throws -> String {
        var text = context
        for file in files {
            let attributes = try FileManager.default.attributesOfItem(atPath: file.path)
            let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            text += "|\(file.standardizedFileURL.path)|\(attributes[.size] ?? 0)|\(modified)"
        }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return String(hash, radix: 16) + ".safetensors"
    }
}

/// The parts of `FrameFeatures` that training needs, in a storable form.
public struct CachedFeatures: Sendable {
    public var rgbTokens: Tensor, pointFeatures: Tensor
    public var foregroundPixels: [Int]
    public var neighbors: [Int32], weights: [Float]

    public init(_ features: FrameFeatures) {
        rgbTokens = features.rgbTokens
        pointFeatures = features.pointFeatures
        foregroundPixels = features.foreground.pixelIndices
        neighbors = features.interpolation.indices.map(Int32.init)
        weights = features.interpolation.weights
    }

    init(_ st: SafeTensors) throws {
        rgbTokens = try st.tensor("rgb_tokens")
        pointFeatures = try st.tensor("point_features")
        foregroundPixels = try st.tensor("foreground_pixels").scalars.map { Int($0) }
        neighbors = try st.tensor("neighbors").scalars.map { Int32($0) }
        weights = try st.tensor("weights").scalars
    }

    var tensors: [String: Tensor] {
        ["rgb_tokens": rgbTokens, "point_features": pointFeatures,
         "foreground_pixels": Tensor(shape: [foregroundPixels.count], scalars: foregroundPixels.map(Float.init)),
         "neighbors": Tensor(shape: [neighbors.count], scalars: neighbors.map(Float.init)),
         "weights": Tensor(shape: [weights.count], scalars: weights)]
    }

    /// The training sample: per-pixel combinations of both paths at the model input size.
    public func sample(size: Int, grid: Int) -> TrainingSample {
        let (rgb, xyz) = PixelCombinations.paths(size: size, grid: grid, foregroundPixels: foregroundPixels,
                                                 neighbors: neighbors, weights: weights)
        return TrainingSample(rgbTokens: rgbTokens, pointFeatures: pointFeatures, rgb: rgb, xyz: xyz)
    }
}
