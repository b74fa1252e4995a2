import ArgumentParser
import CFMJobs
import CFMTensor
import Foundation

/// `cfm calibrate`: the pass/reject threshold from the nominal validation split.
struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Set the bundle's pass/reject threshold from nominal validation parts.",
        discussion: """
            Scores DATASET/CLASS/validation/good with the bundle's settings and stores the threshold and the score \
            distribution in manifest.yaml. A rate the split cannot support (fewer than ⌈1/rate⌉ parts) is refused first.
            """)

    @Option(help: "Class directory in MVTec 3D-AD layout (DATASET/CLASS).") var data: String
    @Option(help: "Model bundle directory (cfm train).") var model: String
    @Option(help: "Directory with the extractor weights the bundle was trained with.") var extractors: String
    @Option(help: "Target fraction of nominal parts rejected.") var falseRejectRate = 0.01
    @OptionGroup var unit: UnitOption
    @Option(help: "GEMM precision to calibrate at and record in the bundle: fp32 or bf16 (needs AVX512-BF16; default: the bundle's, else fp32).")
    var precision: Precision?

    func run() throws {
        var options = CalibrationJob.Options(data: URL(fileURLWithPath: data), model: URL(fileURLWithPath: model),
                                             extractors: URL(fileURLWithPath: extractors))
        (options.falseRejectRate, options.unit, options.precision) = (falseRejectRate, unit.unit, precision)
        let c = try CalibrationJob.run(options, progress: Progress.display())
        print(String(format: "threshold %.4f for a false-reject rate of %g on %d nominal parts (scores min %.4f, median %.4f, p99 %.4f, max %.4f)",
                     c.threshold, c.falseRejectRate, c.samples, c.min, c.median, c.p99, c.max))
    }
}
