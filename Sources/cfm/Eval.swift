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
            """)

    @Option(help: "Class directory in MVTec 3D-AD layout (DATASET/CLASS).") var data: String
    @Option(help: "Directory with the extractor weights the bundle was trained with.") var extractors: String?
    @Option(help: "Model bundle directory (cfm train); its manifest gives the tier, BatchNorm mode and preprocessing.") var model: String?
    @Flag(help: "Score with the non-learned baseline (colour and height-above-plane distances from the nominal training parts) instead of a model bundle.")
    var baseline = false
    @Option(help: "With --baseline: fit it to the first K training samples (default: all).") var shots: Int?
    @Option(help: "Output directory.") var out: String
    @Option(help: "AUPRO thresholds: 0 = exact curve (default); N ≥ 2 = the CFM authors' sampling (99 as in the paper).")
    var proThresholds = 0
    @OptionGroup var unit: UnitOption
    @OptionGroup var precision: PrecisionOption

    func validate() throws {
        if baseline {
            guard extractors == nil, model == nil else { throw ValidationError("--baseline takes no --extractors or --model") }
        } else {
            guard extractors != nil, model != nil else { throw ValidationError("give --extractors and --model (or --baseline)") }
            guard shots == nil else { throw ValidationError("--shots applies to --baseline; a model bundle was trained on its own shots") }
        }
        do { try options.validate() } catch { throw ValidationError("\(error)") }
    }

    var options: EvaluationJob.Options {
        let scorer: EvaluationJob.Scorer = if let model, let extractors {
            .model(bundle: URL(fileURLWithPath: model), extractors: URL(fileURLWithPath: extractors))
        } else {
            .baseline(shots: shots)
        }
        var o = EvaluationJob.Options(data: URL(fileURLWithPath: data), scorer: scorer, out: URL(fileURLWithPath: out))
        (o.proThresholds, o.unit, o.precision) = (proThresholds, unit.unit, precision.choice)
        return o
    }

    func run() throws {
        let result = try EvaluationJob.run(options, progress: Progress.display())
        if let trained = result.trainedClass {
            FileHandle.standardError.write(Data("warning: the bundle was trained on class '\(trained)', evaluated on '\(result.className)'\n".utf8))
        }
        if let warning = result.undefinedMetrics { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
        func show(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "n/a" }
        let o = result.report.overall
        print("\(result.className) \(result.scorerName): I-AUROC \(show(o.imageAUROC)) P-AUROC \(show(o.pixelAUROC)) "
              + zip(PROCurve.limits, o.auPRO).map { "AUPRO@\(DetectionMetrics.percent($0)) \(show($1))" }.joined(separator: " ")
              + String(format: " — %d samples (%d good), %.2f frames/s → %@", o.samples, o.nominal,
                       result.framesPerSecond, result.out.path))
    }
}
