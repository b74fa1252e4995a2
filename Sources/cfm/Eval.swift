import ArgumentParser
import CFMData
import CFMJobs
import Foundation

/// `cfm eval`: a model bundle on the labelled test split — the MVTec 3D-AD metrics, and every
/// map, score and overlay for a person to look at.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a model bundle on DATASET/CLASS/test: I-AUROC, P-AUROC, AUPRO, maps, scores, overlays.",
        discussion: """
            Writes OUT/metrics.json (overall and per defect type, each defect's images together with \
            the good ones), OUT/scores.json ({"<defect>/<id>": score}), OUT/maps/<defect>/<id>.tiff \
            (float32 224×224 anomaly map), OUT/overlays/<defect>/<id>.png (a panel at the sensor's \
            resolution: RGB | height above the plane | heat map anchored at the threshold with the \
            defect regions boxed and the ground-truth contour in green) and OUT/report.html with \
            roc.png and pro.png. A calibrated bundle also gets metrics.json's at_threshold: the \
            confusion matrix and the false-reject and miss rates at its threshold. The bundle's \
            manifest sets the tier, BatchNorm mode, preprocessing and scoring.

            Ground-truth masks are brought onto the 224×224 map grid by the official evaluation \
            protocol: padded to a centred square by replicating their edge pixels, resized with \
            Pillow's NEAREST (pixel-centre sampling), anomalous where value/255 > 0.5. P-AUROC ranks each \
            map divided by √(its mean), AUPRO thresholds each map divided by the mean of its non-zero \
            values (docs/evaluation.md). AUPRO uses the exact curve (every distinct score) unless \
            --pro-thresholds N asks for the CFM authors' N sampled thresholds (99 in their tables).

            --aggregations all (or a comma list) also evaluates other ways of combining ψ2D and ψ3D \
            (product, sum, max, 2d_only, 3d_only) in the same pass: the two maps are computed once per \
            sample and each variant is smoothed and scored from them. metrics.json keeps the bundle's \
            own aggregation at the top level and adds every compared one under variants.
            """)

    @Option(help: "Class directory in MVTec 3D-AD or Eyecandies layout (DATASET/CLASS).") var data: String
    @Option(help: "Directory with the extractor weights the bundle was trained with.") var extractors: String?
    @Option(help: "Model bundle directory (cfm train); its manifest gives the tier, BatchNorm mode and preprocessing.") var model: String?
    @Flag(help: "Score with the non-learned baseline (colour and height-above-plane distances from the nominal training parts) instead of a model bundle.")
    var baseline = false
    @Option(help: "With --baseline: fit it to K training samples drawn with --seed as cfm train --shots draws them (default: all).")
    var shots: Int?
    @Option(help: "With --baseline --shots: the seed of the draw (cfm train's --seed gives the same samples).") var seed: UInt64 = 0
    @Option(help: "Output directory.") var out: String
    @Option(help: "AUPRO thresholds: 0 = exact curve (default); N ≥ 2 = the CFM authors' sampling (99 as in the paper).")
    var proThresholds = 0
    @Option(help: "Also compare these aggregations of ψ2D and ψ3D in the same pass: all, or a comma list of product, sum, max, 2d_only, 3d_only (metrics.json's variants).")
    var aggregations: String?
    @OptionGroup var unit: UnitOption
    @OptionGroup var precision: PrecisionOption

    func validate() throws {
        if baseline {
            guard extractors == nil, model == nil else { throw ValidationError("--baseline takes no --extractors or --model") }
        } else {
            guard extractors != nil, model != nil else { throw ValidationError("give --extractors and --model (or --baseline)") }
            guard shots == nil, seed == 0 else {
                throw ValidationError("--shots and --seed apply to --baseline; a model bundle was trained on its own shots")
            }
        }
        do {
            if let aggregations { _ = try EvaluationJob.aggregations(named: aggregations) }
            try options.validate()
        } catch {
            throw ValidationError("\(error)")
        }
    }

    var options: EvaluationJob.Options {
        let scorer: EvaluationJob.Scorer = if let model, let extractors {
            .model(bundle: URL(fileURLWithPath: model), extractors: URL(fileURLWithPath: extractors))
        } else {
            .baseline(shots: shots, seed: seed)
        }
        var o = EvaluationJob.Options(data: URL(fileURLWithPath: data), scorer: scorer, out: URL(fileURLWithPath: out))
        (o.proThresholds, o.unit, o.precision) = (proThresholds, unit.unit, precision.choice)
        o.aggregations = (try? aggregations.map(EvaluationJob.aggregations(named:))) ?? []
        return o
    }

    func run() throws {
        let result = try EvaluationJob.run(options, progress: Progress.display())
        if let trained = result.trainedClass {
            FileHandle.standardError.write(Data("warning: the bundle was trained on class '\(trained)', evaluated on '\(result.className)'\n".utf8))
        }
        if let warning = result.undefinedMetrics { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
        func show(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "n/a" }
        func line(_ o: DetectionMetrics) -> String {
            "I-AUROC \(show(o.imageAUROC)) P-AUROC \(show(o.pixelAUROC)) "
                + zip(PROCurve.limits, o.auPRO).map { "AUPRO@\(DetectionMetrics.percent($0)) \(show($1))" }.joined(separator: " ")
        }
        for (aggregation, variant) in result.variants.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            print("  \(aggregation.rawValue)\(aggregation == result.aggregation ? " (the bundle's)" : ""): \(line(variant.overall))")
        }
        let o = result.report.overall
        print("\(result.className) \(result.scorerName)\(result.aggregation.map { " \($0.rawValue)" } ?? ""): \(line(o))"
              + String(format: " — %d samples (%d good), %.2f frames/s → %@", o.samples, o.nominal,
                       result.framesPerSecond, result.out.path))
    }
}
