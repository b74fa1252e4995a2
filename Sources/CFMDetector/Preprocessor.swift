import CFMData
import CFMGeometry
import CFMTensor
import Foundation

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
///
/// Cost is linear in the sensor's pixels with one full-resolution buffer, the cloud in metres
/// (12 bytes a pixel) that background removal edits in place: the caller's own memory
/// (`callAsFunction(rgb:editing:…)`, what `cfm serve` does with the received message's
/// geometry part), or a copy kept by a `PreprocessWorkspace` for the next frame. The padded square is never built: both resizes
/// read the sensor pixels directly.
public struct Preprocessor: Sendable {
    public var options: PreprocessOptions

    public init(options: PreprocessOptions = PreprocessOptions()) { self.options = options }

    /// Preprocesses a pixel-registered pair: `rgb` and `cloud` [H, W, 3] in `unit`. A pixel with
    /// a NaN or infinite coordinate is a hole, like (0, 0, 0): sensors mark missing
    /// measurements either way.
    public func callAsFunction(rgb: RGBImage, cloud: Tensor, unit: LengthUnit = .m) throws -> PreprocessedFrame {
        var times = StageTimes()
        return try self(rgb: rgb, cloud: cloud, unit: unit, workspace: PreprocessWorkspace(), times: &times)
    }

    /// Preprocesses like `callAsFunction(rgb:cloud:unit:)` in `workspace`'s buffers (hold one per
    /// worker and pass it frame after frame: nothing at the sensor's resolution is allocated
    /// again while the frame size stays), recording the sub-stages in `times`:
    /// `holes_units` (hole screening and unit conversion, one pass), `plane` and `clusters`
    /// (background removal's two steps, when it is on; no `clusters` when no plane was found)
    /// and `resize` (padding, both resizes and normalisation). `cloud` is read, not changed:
    /// the pass copies it into the workspace's metre buffer, which background removal edits.
    public func callAsFunction(rgb: RGBImage, cloud: Tensor, unit: LengthUnit = .m, workspace: PreprocessWorkspace,
                               times: inout StageTimes) throws -> PreprocessedFrame {
        try Self.requireRegistered(rgbHeight: rgb.height, rgbWidth: rgb.width, cloud: cloud.shape)
        return try workspace.withLock { () throws -> PreprocessedFrame in
            var coordinates = workspace.takeCoordinates(count: cloud.count)
            defer { workspace.coordinates = coordinates }
            return try rgb.withView { rgb in
                try coordinates.withUnsafeMutableBufferPointer { metres in
                    let foreground = times.measure("holes_units") {
                        cloud.withUnsafeBufferPointer { Self.loadMetres($0.baseAddress!, unit: unit, into: metres) }
                    }
                    let view = try OrganizedCloudView(height: rgb.height, width: rgb.width, coordinates: metres)
                    return try finish(rgb: rgb, cloud: view, foreground: foreground, workspace: workspace, times: &times)
                }
            }
        }
    }

    /// Preprocesses like `callAsFunction(rgb:cloud:unit:workspace:times:)` with `cloud`'s own
    /// memory as the buffer background removal edits: no full-resolution copy. On entry the
    /// memory holds the [H, W, 3] values in `unit`; on return, in metres (what the view's type
    /// promises from then on) with holes and removed points as (0, 0, 0). The memory is the
    /// caller's — an array it owns, or a received message's geometry part (`cfm serve`): the
    /// caller makes sure nothing else reads or writes it during the call.
    public func callAsFunction(rgb: RGBImageView, editing cloud: OrganizedCloudView, unit: LengthUnit = .m,
                               workspace: PreprocessWorkspace, times: inout StageTimes) throws -> PreprocessedFrame {
        try Self.requireRegistered(rgbHeight: rgb.height, rgbWidth: rgb.width, cloud: [cloud.height, cloud.width, 3])
        return try workspace.withLock { () throws -> PreprocessedFrame in
            let foreground = times.measure("holes_units") {
                Self.loadMetres(UnsafePointer(cloud.coordinates.baseAddress!), unit: unit, into: cloud.coordinates)
            }
            return try finish(rgb: rgb, cloud: cloud, foreground: foreground, workspace: workspace, times: &times)
        }
    }

    /// An RGB image of `rgbHeight` × `rgbWidth` and a cloud of shape `cloud` describe the same H × W pixels.
    private static func requireRegistered(rgbHeight: Int, rgbWidth: Int, cloud: [Int]) throws {
        guard cloud == [rgbHeight, rgbWidth, 3] else {
            throw DetectorError.badInput("point cloud is \(cloud), RGB image is \(rgbHeight)×\(rgbWidth): not pixel-registered")
        }
    }

    /// The steps after `holes_units`: background removal editing `cloud` (in metres, holes as
    /// zeros, `foreground` points), then both resizes and normalisation.
    private func finish(rgb: RGBImageView, cloud: OrganizedCloudView, foreground: Int, workspace: PreprocessWorkspace,
                        times: inout StageTimes) throws -> PreprocessedFrame {
        let (h, w, s) = (rgb.height, rgb.width, options.size)
        var mark = StageTimes.mark()
        let report = options.removeBackground
            ? try cloud.removeBackground(options: options.background) { times.lap($0.rawValue, since: &mark) } : nil
        return times.measure("resize") {
            let xyz = paddedSquareNearestResize(UnsafeBufferPointer(cloud.coordinates), height: h, width: w, channels: 3, outSize: s)
            let small = rgb.squareResized(to: s, scratch: &workspace.resizeRows)
            return PreprocessedFrame(input: ModelInput(rgb: normalised(small), xyz: xyz), rgb: small, background: report,
                                     foregroundPoints: report?.remaining ?? foreground)
        }
    }

    /// Writes the cloud at `source` (`coordinates.count` values, [H·W·3] in `unit`) to
    /// `coordinates` in metres, every hole — a pixel with a NaN or infinite coordinate — as
    /// (0, 0, 0); returns the foreground points (all three coordinates non-zero). One parallel
    /// pass; `source` may be `coordinates` itself (the conversion in place), and in metres
    /// in place only the holes are written, so a decoded frame's cloud is only read.
    static func loadMetres(_ source: UnsafePointer<Float>, unit: LengthUnit, into coordinates: UnsafeMutableBufferPointer<Float>) -> Int {
        let metres = unit.metres, pixels = coordinates.count / 3, dst = coordinates.baseAddress!
        let writesAll = metres != 1 || source != UnsafePointer(dst)
        var foregroundPerWorker = [Int](repeating: 0, count: cpuCount)
        foregroundPerWorker.withUnsafeMutableBufferPointer { foreground in
            parallelWorkers(pixels, minimumChunk: 1 << 16) { worker, range in
                var count = 0
                func convert(_ p: Int) {
                    var (x, y, z) = (source[3 * p], source[3 * p + 1], source[3 * p + 2])
                    if x.isFinite && y.isFinite && z.isFinite {
                        if writesAll {
                            (x, y, z) = (x * metres, y * metres, z * metres)
                            (dst[3 * p], dst[3 * p + 1], dst[3 * p + 2]) = (x, y, z)
                        }
                        if x != 0 && y != 0 && z != 0 { count += 1 }
                    } else {
                        (dst[3 * p], dst[3 * p + 1], dst[3 * p + 2]) = (0, 0, 0)
                    }
                }
                // Four pixels (12 values) at a time; a block with a hole or a non-finite value goes pixel by pixel.
                let blocks = range.lowerBound + (range.count / 4) * 4
                for p in stride(from: range.lowerBound, to: blocks, by: 4) {
                    // Scaled (metres ≤ 1): finite and non-zero exactly where the pixel rule sees it so.
                    let values = UnsafeRawPointer(source + 3 * p)
                    let (a, b, c) = (values.loadUnaligned(as: SIMD4<Float>.self) * metres,
                                     values.loadUnaligned(fromByteOffset: 16, as: SIMD4<Float>.self) * metres,
                                     values.loadUnaligned(fromByteOffset: 32, as: SIMD4<Float>.self) * metres)
                    guard Self.finiteAndNonZero(a) && Self.finiteAndNonZero(b) && Self.finiteAndNonZero(c) else {
                        for q in p..<(p + 4) { convert(q) }
                        continue
                    }
                    if writesAll {
                        let out = UnsafeMutableRawPointer(dst + 3 * p)
                        out.storeBytes(of: a, as: SIMD4<Float>.self)
                        out.storeBytes(of: b, toByteOffset: 16, as: SIMD4<Float>.self)
                        out.storeBytes(of: c, toByteOffset: 32, as: SIMD4<Float>.self)
                    }
                    count += 4
                }
                for p in blocks..<range.upperBound { convert(p) }
                foreground[worker] += count
            }
        }
        return foregroundPerWorker.reduce(0, +)
    }

    /// Every lane finite and non-zero: without the sign bit, its bit pattern is in
    /// 1 ... the largest finite Float's (zeros are 0, infinity and NaN above).
    @inline(__always) private static func finiteAndNonZero(_ v: SIMD4<Float>) -> Bool {
        let magnitude = unsafeBitCast(v, to: SIMD4<Int32>.self) & SIMD4(repeating: 0x7FFF_FFFF)
        return all((magnitude .> SIMD4(repeating: 0)) .& (magnitude .<= SIMD4(repeating: Int32(bitPattern: Float.greatestFiniteMagnitude.bitPattern))))
    }

    /// ImageNet normalisation: `small` [S, S, 3] bytes → [3, S, S], (byte / 255 − mean) / std
    /// per channel, through a 256-entry table per channel (the same float expression).
    func normalised(_ small: RGBImage) -> Tensor {
        let plane = small.height * small.width
        var out = Tensor(shape: [3, small.height, small.width])
        out.withUnsafeMutableBufferPointer { out in
            small.bytes.withUnsafeBufferPointer { bytes in
                for c in 0..<3 {
                    let (mean, std) = (options.mean[c], options.std[c])
                    let table = (0..<256).map { (Float($0) / 255 - mean) / std }
                    for p in 0..<plane { out[c * plane + p] = table[Int(bytes[3 * p + c])] }
                }
            }
        }
        return out
    }
}

/// The buffers of one preprocessing worker, reused frame after frame: the sensor-resolution
/// cloud in metres (12 bytes a pixel; the copying call only) and Pillow's horizontal pass
/// (H × S × 3 bytes). The serve pipeline holds one per preprocessing thread and passes it to
/// `Preprocessor.callAsFunction(rgb:editing:unit:workspace:times:)`; a buffer is reallocated
/// only when the frame size changes.
///
/// A lock serialises preprocessing calls that share a workspace, so sharing one is safe, just
/// slower than one per worker.
public final class PreprocessWorkspace: @unchecked Sendable {
    private let lock = NSLock()
    /// The cloud in metres, [H·W·3]; background removal edits it in place.
    fileprivate var coordinates: [Float] = []
    /// Scratch of `paddedSquareBicubicResize`.
    fileprivate var resizeRows: [UInt8] = []

    public init() {}

    fileprivate func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// The coordinates buffer resized to `count` values, handed over (the workspace keeps an
    /// empty array until it is given back) so that editing it does not copy it.
    fileprivate func takeCoordinates(count: Int) -> [Float] {
        var taken: [Float] = []
        swap(&taken, &coordinates)
        if taken.count != count { taken = [Float](repeating: 0, count: count) }
        return taken
    }
}
