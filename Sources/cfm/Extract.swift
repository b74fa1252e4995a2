import ArgumentParser
import CFMModels
import CFMTensor
import Foundation

/// `cfm extract`: runs the frozen extractors on already-preprocessed tensors (parity checks
/// against the PyTorch reference, debugging).
struct Extract: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Extract features from preprocessed tensors in a safetensors file.",
        discussion: "Reads rgb_input [3,224,224] (normalised) from --input; writes rgb_features [768,28,28] and rgb_map [768,224,224].")

    @Option(help: "Directory with vit.safetensors.") var extractors: String
    @Option(help: "Pruning tier: tiny, small, medium or full.") var tier: Tier = .small
    @Option(help: "Input safetensors file.") var input: String
    @Option(help: "Output safetensors file.") var out: String

    func run() throws {
        let vit = try VisionTransformer.load(extractors: URL(fileURLWithPath: extractors), tier: tier)
        let c = vit.config
        let image = try SafeTensors(contentsOf: URL(fileURLWithPath: input))
            .tensor("rgb_input", shape: [c.channels, c.imageSize, c.imageSize])
        var workspace = vit.makeWorkspace()
        let features = vit.features(image: image, workspace: &workspace)
        try SafeTensors.write(["rgb_features": features, "rgb_map": vit.upsample(features)],
                              metadata: ["tier": tier.rawValue], to: URL(fileURLWithPath: out))
    }
}

extension Tier: ExpressibleByArgument {}
