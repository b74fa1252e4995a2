import ArgumentParser
import CFMData
import CFMDetector
import CFMModels
import CFMTensor
import CFMTraining
import Foundation

/// `cfm train`: fits both crossmodal mappers on the nominal training parts of one class.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train the crossmodal mappers on nominal parts → a model bundle.",
        discussion: "Extracts each training sample's frozen features once (cached), then trains with Adam.")

    @Option(help: "Class directory in MVTec 3D-AD layout (DATASET/CLASS).") var data: String
    @OptionGroup var extractor: ExtractorOptions
    @OptionGroup var preprocess: PreprocessFlags
    @Option(help: "Output model bundle directory (written atomically).") var out: String
    @Option(help: "Epochs.") var epochs = 50
    @Option(help: "Use only the first K training samples (few-shot).") var shots: Int?
    @Option(help: "Unmasked pixels drawn per sample and step (unbiased subsampling); 0 = all.") var pixelsPerSample = 2048
    @Option(help: "Samples per batch.") var batchSize = 4
    @Option(help: "Adam learning rate.") var learningRate: Float = 1e-3
    @Option(help: "Seed of initialisation, shuffling and subsampling.") var seed: UInt64 = 0
    @Option(help: "Feature cache directory.") var cache = FileManager.default.temporaryDirectory.appendingPathComponent("cfm-feature-cache").path

    func validate() throws {
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1") }
        guard shots.map({ $0 >= 1 }) ?? true else { throw ValidationError("--shots must be at least 1") }
        guard batchSize >= 1, pixelsPerSample >= 0 else { throw ValidationError("--batch-size must be ≥ 1 and --pixels-per-sample ≥ 0") }
    }

    func run() throws {
        let started = Date()
        let samples = try trainingSamples(data, shots: shots)
        let detector = try extractor.detector(model: nil)
        let checksums = try extractorChecksums(extractor.extractorsURL)
        let cache = FeatureCache(directory: URL(fileURLWithPath: cache),
                                 context: "\(checksums.map(\.checksum))|\(extractor.tier)|\(extractor.batchnorm)|\(preprocess.noBackgroundRemoval)|\(preprocess.unit)")
        let preprocessor = preprocess.preprocessor
        let extraction = Progress("features", total: samples.count)
        var training: [TrainingSample] = [], extracted = 0
        let extractionStarted = Date()
        for (i, sample) in samples.enumerated() {
            let files = [sample.rgb, sample.xyz]
            let cached = try cache.load(files) ?? {
                extracted += 1
                let (frame, _) = try preprocessor(sample, unit: preprocess.unit)
                var times = StageTimes()
                let features = CachedFeatures(try detector.extract(frame.input, times: &times))
                cache.store(features, for: files)
                return features
            }()
            training.append(cached.sample(size: detector.inputSize, grid: detector.vit.config.grid))
            extraction.update(i + 1, sample.key)
        }

        let extractionSeconds = Date().timeIntervalSince(extractionStarted), trainingStarted = Date()

        let rgbDim = detector.vit.config.dim, xyzDim = detector.pointMAE.featureDim
        var trainer = MapperTrainer(rgbToXYZ: .initial(inFeatures: rgbDim, outFeatures: xyzDim, seed: seed),
                                    xyzToRGB: .initial(inFeatures: xyzDim, outFeatures: rgbDim, seed: seed &+ 1),
                                    pixelsPerSample: pixelsPerSample, seed: seed, learningRate: learningRate)
        let progress = Progress("train", total: epochs)
        var last = TrainingMetrics(loss: 0, cosine3D: 0, cosine2D: 0, pixels: 0)
        for epoch in 1...epochs {
            last = trainer.epoch(training, batchSize: batchSize)
            progress.update(epoch, String(format: "loss %.4f cos3D %.4f cos2D %.4f", last.loss, last.cosine3D, last.cosine2D))
        }

        let className = URL(fileURLWithPath: data).standardizedFileURL.lastPathComponent
        let manifest = ModelManifest(
            tier: extractor.tier, className: className, rgbDim: rgbDim, xyzDim: xyzDim, hiddenDim: trainer.rgbToXYZ.hidden,
            batchnorm: extractor.batchnorm, extractors: checksums, mappers: [],
            training: .init(samples: samples.count, shots: shots, epochs: epochs, batchSize: batchSize, learningRate: learningRate,
                            pixelsPerSample: pixelsPerSample, seed: seed, finalLoss: last.loss,
                            finalCosine3D: last.cosine3D, finalCosine2D: last.cosine2D,
                            seconds: Date().timeIntervalSince(started), extractionSeconds: extractionSeconds,
                            extractedSamples: extracted, trainingSeconds: Date().timeIntervalSince(trainingStarted)),
            createdAt: ISO8601DateFormatter().string(from: Date()), toolVersion: CFM.version)
        try ModelBundle.write(manifest, rgbToXYZ: trainer.rgbToXYZ, xyzToRGB: trainer.xyzToRGB, to: URL(fileURLWithPath: out))
        print("wrote \(out) (\(samples.count) samples, \(epochs) epochs, final loss \(String(format: "%.4f", last.loss)))")
    }
}
