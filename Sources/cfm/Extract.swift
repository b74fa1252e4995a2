import ArgumentParser
import CFMDetector
import CFMModels
import CFMTensor
import Foundation

/// `cfm extract`: the detector on already-preprocessed tensors (parity checks against the
/// PyTorch reference, debugging).
struct Extract: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the extractors (and mappers) on preprocessed tensors in a safetensors file.",
        discussion: """
            Reads rgb_input [3,224,224] (normalised) and optionally xyz_input [224,224,3] (organized, after \
            background removal) from --input. Writes rgb_features and rgb_map; with xyz_input also centers, \
            center_indices, groups, xyz_features, xyz_map and foreground; with --model also psi2d, psi3d, \
            anomaly_map and score.
            """)

    @OptionGroup var extractor: ExtractorOptions
    @Option(help: "Model bundle directory with the two mappers.") var model: String?
    @Option(help: "Input safetensors file.") var input: String
    @Option(help: "Output safetensors file.") var out: String

    func run() throws {
        let tensors = try SafeTensors(contentsOf: URL(fileURLWithPath: input))
        let detector = try extractor.detector(model: model)
        let s = detector.inputSize
        let rgb = try tensors.tensor("rgb_input", shape: [3, s, s])
        var dump: [String: Tensor]
        if tensors.contains("xyz_input") {
            let frame = ModelInput(rgb: rgb, xyz: try tensors.tensor("xyz_input", shape: [s, s, 3]))
            var times = StageTimes()
            let features = try detector.extract(frame, times: &times)
            let detection = detector.scorer == nil ? nil : detector.score(features, times: &times)
            dump = detector.dump(frame, features, detection)
        } else {
            var workspace = detector.vit.makeWorkspace()
            let features = detector.vit.features(image: rgb, workspace: &workspace)
            dump = ["rgb_features": features, "rgb_map": detector.vit.upsample(features)]
        }
        let batchnorm = detector.manifest?.batchnorm ?? extractor.batchnorm ?? .frame
        try SafeTensors.write(dump, metadata: ["tier": detector.tier.rawValue, "batchnorm": batchnorm.rawValue],
                              to: URL(fileURLWithPath: out))
    }
}

