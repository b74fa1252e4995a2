import ArgumentParser
import CFMDetector
import CFMJobs
import CFMModels
import Foundation

/// `cfm train`: fits both crossmodal mappers on the nominal training parts of one class.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train the crossmodal mappers on nominal parts → a model bundle.",
        discussion: """
            Extracts each training sample's frozen features once (cached), then trains with Adam. The manifest \
            records the tier, BatchNorm mode, preprocessing and scoring: every command that uses the bundle reads them from it, \
            and which training samples were used (training.selection: the rule, the seed and the sample names) and held out.
            """)

    @Option(help: "Class directory in MVTec 3D-AD or Eyecandies layout (DATASET/CLASS).") var data: String
    @Option(help: "Directory with vit.safetensors and pointmae.safetensors.") var extractors: String
    @Option(help: "Pruning tier: tiny, small, medium or full.") var tier: Tier = .small
    @Option(help: "BatchNorm statistics of Point-MAE: frame (the authors' released behaviour) or running.")
    var batchnorm: BatchNormMode = .frame
    @Flag(help: "Skip RANSAC plane removal and cluster cleaning (recorded in the bundle).") var noBackgroundRemoval = false
    @OptionGroup var unit: UnitOption
    @Option(help: "Output model bundle directory (written atomically).") var out: String
    @Option(help: "Epochs.") var epochs = 50
    @Option(help: "Train on K of the nominal training samples (few-shot), chosen by --shot-selection; default: all.") var shots: Int?
    @Option(help: "With --shots: random (K drawn with --seed from the sorted sample names; the default) or first (the first K).")
    var shotSelection: ShotSelection = .random
    @Option(help: "Hold out N nominal training samples, drawn with --seed, for cfm calibrate (layouts without a validation split, e.g. Eyecandies).")
    var holdOut = 0
    @Option(help: "Unmasked pixels drawn per sample and step (unbiased subsampling); 0 = all.") var pixelsPerSample = 2048
    @Option(help: "Samples per batch.") var batchSize = 4
    @Option(help: "Adam learning rate.") var learningRate: Float = 1e-3
    @Option(help: "Seed of initialisation, shuffling, subsampling and the draws of --shots and --hold-out.") var seed: UInt64 = 0
    @Option(help: "Feature cache directory.") var cache = FileManager.default.temporaryDirectory.appendingPathComponent("cfm-feature-cache").path

    var options: TrainingJob.Options {
        var o = TrainingJob.Options(data: URL(fileURLWithPath: data), extractors: URL(fileURLWithPath: extractors),
                                    out: URL(fileURLWithPath: out), tier: tier, cache: URL(fileURLWithPath: cache))
        (o.batchnorm, o.unit, o.epochs, o.shots) = (batchnorm, unit.unit, epochs, shots)
        (o.shotSelection, o.holdOut) = (shotSelection, holdOut)
        (o.pixelsPerSample, o.batchSize, o.learningRate, o.seed) = (pixelsPerSample, batchSize, learningRate, seed)
        o.preprocessing.removeBackground = !noBackgroundRemoval
        o.toolVersion = CFM.version
        return o
    }

    func validate() throws {
        do { try options.validate() } catch { throw ValidationError("\(error)") }
    }

    func run() throws {
        let manifest = try TrainingJob.run(options, progress: Progress.display())
        let heldOut = manifest.training.selection.map { $0.heldOutIDs.isEmpty ? "" : ", \($0.heldOutIDs.count) held out" } ?? ""
        print("wrote \(out) (\(manifest.training.samples) samples\(heldOut), \(manifest.training.epochs) epochs, final loss "
              + String(format: "%.4f", manifest.training.finalLoss) + ")")
    }
}

extension ShotSelection: ExpressibleByArgument {}
