import ArgumentParser
import CFMData
import CFMDetector
import CFMModels
import CFMTensor
import Foundation

/// Options that select the extractors and, where no bundle manifest sets them, the tier and
/// Point-MAE's BatchNorm mode.
struct ExtractorOptions: ParsableArguments {
    @Option(help: "Directory with vit.safetensors and pointmae.safetensors.") var extractors: String
    @Option(help: "Pruning tier: tiny, small, medium or full (default: the bundle's; needed without a manifest).")
    var tier: Tier?
    @Option(help: "BatchNorm statistics of Point-MAE: frame or running (default: the bundle's, else frame).")
    var batchnorm: BatchNormMode?
    @OptionGroup var precision: PrecisionOption

    var extractorsURL: URL { URL(fileURLWithPath: extractors) }

    /// The detector with the mappers of `model` (if any); a tier or mode given must agree with its manifest.
    func detector(model: String?) throws -> AnomalyDetector {
        try AnomalyDetector.load(extractors: extractorsURL, model: model.map { URL(fileURLWithPath: $0) },
                                 tier: tier, batchNorm: batchnorm, precision: precision.choice)
    }
}

/// The precision of the GEMM-heavy layers, overriding the bundle's.
struct PrecisionOption: ParsableArguments {
    @Option(help: "GEMM precision: fp32 or bf16 (needs AVX512-BF16; default: the bundle's, else fp32).")
    var precision: Precision?

    var choice: PrecisionChoice { precision.map { .run($0) } ?? .bundle }
}

/// The unit of a dataset's or frame's XYZ values (a property of the data, not of the model).
struct UnitOption: ParsableArguments {
    @Option(help: "Unit of the XYZ values: m or mm.") var unit: LengthUnit = .m
}

/// The camera of depth-image inputs (`SensorFiles`); XYZ inputs need none.
struct DepthOptions: ParsableArguments {
    @Option(help: "Pinhole intrinsics of a depth image in pixels: fx,fy,cx,cy (u = column, v = row).") var intrinsics: Intrinsics?
    @Option(help: "Metres per count of a 16-bit depth image.") var depthScale: Double = DepthCamera.defaultDepthScale

    func validate() throws {
        guard depthScale.isFinite, depthScale > 0 else { throw ValidationError("--depth-scale must be a positive number of metres per count") }
    }

    var camera: DepthCamera? { intrinsics.map { DepthCamera(intrinsics: $0, depthScale: depthScale) } }
}

extension Intrinsics: ExpressibleByArgument {
    /// "fx,fy,cx,cy": four finite numbers, focal lengths positive.
    public init?(argument: String) {
        let values = argument.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard values.count == 4, let fx = values[0], let fy = values[1], let cx = values[2], let cy = values[3] else { return nil }
        self.init(fx: fx, fy: fy, cx: cx, cy: cy)
        guard isValid else { return nil }
    }
}

extension Tier: ExpressibleByArgument {}
extension BatchNormMode: ExpressibleByArgument {}
extension LengthUnit: ExpressibleByArgument {}
extension Precision: ExpressibleByArgument {}

/// Writes `object` as pretty, key-sorted JSON to `url`.
func writeJSON(_ object: Any, to url: URL) throws {
    try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]).write(to: url, options: .atomic)
}
