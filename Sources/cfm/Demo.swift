import ArgumentParser
import CFMData
import CFMDetector
import CFMModels
import Foundation

/// `cfm demo`: the whole story on this machine with nothing to download — a synthetic
/// dataset, seeded extractor weights, training on nominal parts, calibration, then every
/// test part scored with its verdict, a confusion matrix and the image-level AUROC.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the end-to-end demo (nothing to download).")

    @Option(help: "Working directory for the demo's files.") var work: String = "cfm-demo"
    @Option(help: "Pruning tier.") var tier: Tier = .small
    @Option(help: "Synthetic part class: cookie, box or gland.") var partClass: SyntheticClass = .cookie
    @Option(help: "Training epochs.") var epochs = 15

    func run() throws {
        let dir = URL(fileURLWithPath: work)
        let data = dir.appendingPathComponent("data"), extractors = dir.appendingPathComponent("extractors")
        let model = dir.appendingPathComponent("model-\(tier.rawValue)")
        let classDir = data.appendingPathComponent(partClass.rawValue).path
        let started = Date()
        func step(_ text: String) { print("\n== \(text) (\(Int(Date().timeIntervalSince(started))) s)") }

        step("1. synthetic dataset: \(partClass.rawValue) parts on a tilted table, 400×400 RGB + XYZ")
        try Synth.parse(["--out", data.path, "--classes", partClass.rawValue, "--train", "10", "--validation", "10",
                         "--test-per-type", "4"]).run()
        step("2. seeded random extractor weights of the real size (DINO ViT-B/8, Point-MAE)")
        try InitWeights.parse(["--seed", "0", "--out", extractors.path]).run()
        step("3. train the crossmodal mappers on 10 nominal parts (tier \(tier.rawValue))")
        try Train.parse(["--data", classDir, "--extractors", extractors.path, "--tier", tier.rawValue, "--out", model.path,
                         "--epochs", "\(epochs)", "--cache", dir.appendingPathComponent("cache").path]).run()
        step("4. calibrate the pass/reject threshold on 10 nominal validation parts")
        try Calibrate.parse(["--data", classDir, "--model", model.path, "--extractors", extractors.path,
                             "--false-reject-rate", "0.1"]).run()
        step("5. score every test part")
        try scoreTestSplit(classDir: classDir, extractors: extractors, model: model)
        step("done")
    }

    /// Scores the test split in process: a verdict per part, the confusion matrix, I-AUROC.
    private func scoreTestSplit(classDir: String, extractors: URL, model: URL) throws {
        let detector = try AnomalyDetector.load(extractors: extractors, model: model, tier: tier)
        let threshold = detector.manifest!.calibration!.threshold
        let preprocessor = Preprocessor()
        var rows: [(key: String, nominal: Bool, score: Float)] = []
        print("   part              score   verdict   ms")
        for sample in try datasetSamples(classDir, .test) {
            var times = StageTimes()
            let (frame, _) = try times.measure("preprocess") { try preprocessor(sample, unit: .m) }
            let score = try detector.detect(frame.input, times: &times).0.score
            rows.append((sample.key, sample.isNominal, score))
            print("   " + sample.key.padding(toLength: 16, withPad: " ", startingAt: 0)
                + String(format: "  %6.3f  %-8@ %5.0f", score, (score > threshold ? "reject" : "pass") as NSString, times.total))
        }
        let rejected = rows.map { $0.score > threshold }
        let tp = zip(rows, rejected).filter { !$0.0.nominal && $0.1 }.count, fn = rows.filter { !$0.nominal }.count - tp
        let fp = zip(rows, rejected).filter { $0.0.nominal && $0.1 }.count, tn = rows.filter(\.nominal).count - fp
        print("\n   confusion matrix (threshold \(String(format: "%.3f", threshold)))")
        print("                  verdict reject   verdict pass")
        print(String(format: "   defective      %14d %14d", tp, fn))
        print(String(format: "   nominal        %14d %14d", fp, tn))
        let positives = rows.filter { !$0.nominal }.map(\.score), negatives = rows.filter(\.nominal).map(\.score)
        let pairs = positives.flatMap { p in negatives.map { n in p > n ? 1.0 : (p == n ? 0.5 : 0) } }
        print(String(format: "   image-level AUROC %.3f over %d parts", pairs.reduce(0, +) / Double(max(1, pairs.count)), rows.count))
    }
}

