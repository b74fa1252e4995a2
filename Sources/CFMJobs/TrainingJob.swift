import CFMData
import CFMDetector
import CFMModels
import CFMTraining
import Foundation

/// Training both crossmodal mappers on the nominal training parts of one class → a model
/// bundle whose manifest records everything that shapes the output (tier, BatchNorm mode,
/// preprocessing, scoring) with SHA-256 checksums of the mappers and the extractors.
public enum TrainingJob {
    public struct Options: Sendable {
        /// Class directory in MVTec 3D-AD layout (DATASET/CLASS).
        public var data: URL
        /// Directory with vit.safetensors and pointmae.safetensors.
        public var extractors: URL
        /// Output bundle directory (written atomically).
        public var out: URL
        public var tier: Tier
        public var batchnorm: BatchNormMode = .frame
        /// Recorded in the manifest: every command scoring with the bundle preprocesses so.
        public var preprocessing = PreprocessOptions()
        /// Unit of the dataset's XYZ values (a property of the data, not of the model).
        public var unit: LengthUnit = .m
        public var epochs = 50
        /// Train on K of the nominal training samples (few-shot); nil = all (`SampleDraw`).
        public var shots: Int? = nil
        /// How the K samples are chosen: drawn with `seed` (default) or the first K.
        public var shotSelection = ShotSelection.random
        /// Nominal training samples drawn with `seed` and held out for calibration (never
        /// trained on; `CalibrationJob` with `.heldOut`); 0 = none. For layouts without a
        /// validation split (Eyecandies).
        public var holdOut = 0
        /// Unmasked pixels drawn per sample and step (unbiased subsampling); 0 = all.
        public var pixelsPerSample = 2048
        public var batchSize = 4
        public var learningRate: Float = 1e-3
        /// Seed of initialisation, shuffling, subsampling and of the draws of `shots` and `holdOut`.
        public var seed: UInt64 = 0
        /// Feature cache directory.
        public var cache: URL
        /// Recorded in the manifest as `tool_version`.
        public var toolVersion = "unknown"

        public init(data: URL, extractors: URL, out: URL, tier: Tier, cache: URL) {
            (self.data, self.extractors, self.out, self.tier, self.cache) = (data, extractors, out, tier, cache)
        }

        /// Refuses options no run can use, in one line.
        public func validate() throws {
            guard epochs >= 1 else { throw JobError("--epochs must be at least 1") }
            guard shots.map({ $0 >= 1 }) ?? true else { throw JobError("--shots must be at least 1") }
            guard holdOut >= 0 else { throw JobError("--hold-out must be at least 0") }
            guard batchSize >= 1, pixelsPerSample >= 0 else { throw JobError("--batch-size must be ≥ 1 and --pixels-per-sample ≥ 0") }
        }
    }

    /// Trains and writes the bundle; returns its manifest.
    public static func run(_ options: Options, progress: ProgressHandler? = nil) throws -> ModelManifest {
        try options.validate()
        let started = Date()
        let (samples, selection) = try selectTrainingSamples(options.data, shots: options.shots, rule: options.shotSelection,
                                                             holdOut: options.holdOut, seed: options.seed)
        let detector = try AnomalyDetector.load(extractors: options.extractors, model: nil, tier: options.tier,
                                                batchNorm: options.batchnorm)
        let checksums = try ModelBundle.extractorChecksums(options.extractors)
        let preprocessor = Preprocessor(options: options.preprocessing)
        let cache = FeatureCache(directory: options.cache,
                                 context: "\(checksums.map(\.checksum))|\(options.tier)|\(options.batchnorm)|\(options.preprocessing)|\(options.unit)")
        var training: [TrainingSample] = [], extracted = 0
        let extractionStarted = Date()
        for (i, sample) in samples.enumerated() {
            let files = [sample.rgb, sample.xyz]
            let cached = try cache.load(files) ?? {
                extracted += 1
                let (frame, _) = try preprocessor(sample, unit: options.unit)
                var times = StageTimes()
                let features = CachedFeatures(try detector.extract(frame.input, times: &times))
                cache.store(features, for: files)
                return features
            }()
            training.append(cached.sample(size: detector.inputSize, grid: detector.vit.config.grid))
            progress?(JobProgress(phase: "features", done: i + 1, total: samples.count, status: sample.key))
        }
        let extractionSeconds = Date().timeIntervalSince(extractionStarted), trainingStarted = Date()

        let rgbDim = detector.vit.config.dim, xyzDim = detector.pointMAE.featureDim, seed = options.seed
        var trainer = MapperTrainer(rgbToXYZ: .initial(inFeatures: rgbDim, outFeatures: xyzDim, seed: seed),
                                    xyzToRGB: .initial(inFeatures: xyzDim, outFeatures: rgbDim, seed: seed &+ 1),
                                    pixelsPerSample: options.pixelsPerSample, seed: seed, learningRate: options.learningRate)
        var last = TrainingMetrics(loss: 0, cosine3D: 0, cosine2D: 0, pixels: 0)
        for epoch in 1...options.epochs {
            last = trainer.epoch(training, batchSize: options.batchSize)
            progress?(JobProgress(phase: "train", done: epoch, total: options.epochs,
                                  status: String(format: "loss %.4f cos3D %.4f cos2D %.4f", last.loss, last.cosine3D, last.cosine2D)))
        }

        let manifest = ModelManifest(
            tier: options.tier, className: className(of: options.data), rgbDim: rgbDim, xyzDim: xyzDim,
            hiddenDim: trainer.rgbToXYZ.hidden, batchnorm: options.batchnorm, preprocessing: options.preprocessing,
            extractors: checksums, mappers: [],
            training: .init(samples: samples.count, shots: options.shots, epochs: options.epochs, batchSize: options.batchSize,
                            learningRate: options.learningRate, pixelsPerSample: options.pixelsPerSample, seed: seed,
                            finalLoss: last.loss, finalCosine3D: last.cosine3D, finalCosine2D: last.cosine2D,
                            seconds: Date().timeIntervalSince(started), extractionSeconds: extractionSeconds,
                            extractedSamples: extracted, trainingSeconds: Date().timeIntervalSince(trainingStarted),
                            selection: selection),
            createdAt: ISO8601DateFormatter().string(from: Date()), toolVersion: options.toolVersion)
        try ModelBundle.write(manifest, rgbToXYZ: trainer.rgbToXYZ, xyzToRGB: trainer.xyzToRGB, to: options.out)
        return try ModelBundle.manifest(at: options.out, extractors: nil)
    }

}
