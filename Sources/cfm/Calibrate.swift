import ArgumentParser
import CFMDetector
import CFMJobs
import CFMTensor
import Foundation

/// `cfm calibrate`: the pass/reject threshold from nominal parts the bundle was not trained on.
struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Set the bundle's pass/reject threshold (and, optionally, its aggregation) from nominal parts it was not trained on.",
        discussion: """
            Scores DATASET/CLASS/validation/good with the bundle's settings and stores the threshold and the score \
            distribution in manifest.yaml. A layout without a validation split (Eyecandies) is calibrated on the training \
            samples the bundle held out (cfm train --hold-out N). A rate the split cannot support (fewer than ⌈1/rate⌉ parts) \
            is refused first. --aggregation sets how ψ2D and ψ3D combine (stored in the manifest's scoring: serve, infer and \
            eval then use it).
            """)

    @Option(help: "Class directory in MVTec 3D-AD or Eyecandies layout (DATASET/CLASS).") var data: String
    @Option(help: "Model bundle directory (cfm train).") var model: String
    @Option(help: "Directory with the extractor weights the bundle was trained with.") var extractors: String
    @Option(help: "Target fraction of nominal parts rejected.") var falseRejectRate = 0.01
    @Option(help: "Nominal parts to score: validation or held_out (training samples the bundle held out). Default: validation when the layout has it, else held_out.")
    var calibrationSplit: CalibrationSplit?
    @Option(help: "How ψ2D and ψ3D combine, stored in the bundle: product, sum, max, 2d_only or 3d_only (default: the bundle's).")
    var aggregation: ScoringDefinition.Aggregation?
    @OptionGroup var unit: UnitOption
    @Option(help: "GEMM precision to calibrate at and record in the bundle: fp32 or bf16 (needs AVX512-BF16; default: the bundle's, else fp32).")
    var precision: Precision?

    func run() throws {
        var options = CalibrationJob.Options(data: URL(fileURLWithPath: data), model: URL(fileURLWithPath: model),
                                             extractors: URL(fileURLWithPath: extractors))
        (options.falseRejectRate, options.unit, options.precision) = (falseRejectRate, unit.unit, precision)
        (options.split, options.aggregation) = (calibrationSplit, aggregation)
        let c = try CalibrationJob.run(options, progress: Progress.display())
        print(String(format: "threshold %.4f for a false-reject rate of %g on %d nominal parts of %@ (scores min %.4f, median %.4f, p99 %.4f, max %.4f)",
                     c.threshold, c.falseRejectRate, c.samples, c.split?.rawValue ?? "validation", c.min, c.median, c.p99, c.max))
    }
}

extension CalibrationSplit: ExpressibleByArgument {}
extension ScoringDefinition.Aggregation: ExpressibleByArgument {}
