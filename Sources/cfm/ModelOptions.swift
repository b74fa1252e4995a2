import ArgumentParser
import CFMDetector
import CFMModels
import Foundation

/// Options that select the extractors, the tier and Point-MAE's BatchNorm mode.
struct ExtractorOptions: ParsableArguments {
    @Option(help: "Directory with vit.safetensors and pointmae.safetensors.") var extractors: String
    @Option(help: "Pruning tier: tiny, small, medium or full.") var tier: Tier = .small
    @Option(help: "BatchNorm statistics of Point-MAE: frame (the authors' released behaviour) or running.")
    var batchnorm: BatchNormMode = .frame

    var extractorsURL: URL { URL(fileURLWithPath: extractors) }

    /// The detector with the mappers of `model` (if any).
    func detector(model: String?) throws -> AnomalyDetector {
        try AnomalyDetector.load(extractors: extractorsURL, model: model.map { URL(fileURLWithPath: $0) },
                                 tier: tier, batchNorm: batchnorm)
    }
}

/// Options of preprocessing on the command line.
struct PreprocessFlags: ParsableArguments {
    @Flag(help: "Skip RANSAC plane removal and cluster cleaning.") var noBackgroundRemoval = false
    @Option(help: "Unit of the XYZ values: m or mm.") var unit: LengthUnit = .m

    var preprocessor: Preprocessor {
        var options = PreprocessOptions()
        options.removeBackground = !noBackgroundRemoval
        return Preprocessor(options: options)
    }
}

extension Tier: ExpressibleByArgument {}
extension BatchNormMode: ExpressibleByArgument {}
extension LengthUnit: ExpressibleByArgument {}

/// Writes `object` as pretty, key-sorted JSON to `url`.
func writeJSON(_ object: Any, to url: URL) throws {
    try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]).write(to: url, options: .atomic)
}
