import ArgumentParser
import CFMModels
import CFMTensor
import Foundation

/// `cfm init-weights`: seeded random extractor weights of the real architectures.
struct InitWeights: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init-weights",
        abstract: "Write seeded random extractor weights (full 12-block size, official key names).",
        discussion: "Same seed, same bytes. Tiers prune the blocks at load time.")

    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Output directory (created if missing).") var out: String

    func run() throws {
        for file in try Self.write(seed: seed, to: URL(fileURLWithPath: out)) { print("wrote \(file.path)") }
    }

    /// Writes every extractor's weights for `seed` into `dir`; returns the files written.
    @discardableResult
    static func write(seed: UInt64, to dir: URL) throws -> [URL] {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let vitFile = dir.appendingPathComponent(ExtractorFile.vit)
        try SafeTensors.write(RandomWeights.generate(VisionTransformer.Config.dinoViTB8.parameterShapes, seed: seed),
                              metadata: ["model": "vit_base_patch8_224.dino", "cfm_seed": "\(seed)"], to: vitFile)
        // A different stream for the second model, so neither depends on the other's size.
        let pointFile = dir.appendingPathComponent(ExtractorFile.pointMAE)
        try SafeTensors.write(RandomWeights.generate(PointMAE.Config.pointMAE.parameterShapes, seed: seed &+ 0x5EED),
                              metadata: ["model": "point_mae_pretrain", "cfm_seed": "\(seed)"], to: pointFile)
        return [vitFile, pointFile]
    }
}
