import ArgumentParser
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

extension Tier: ExpressibleByArgument {}
extension BatchNormMode: ExpressibleByArgument {}
extension LengthUnit: ExpressibleByArgument {}
extension Precision: ExpressibleByArgument {}

/// Writes `object` as pretty, key-sorted JSON to `url`.
func writeJSON(_ object: Any, to url: URL) throws {
    try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]).write(to: url, options: .atomic)
}
