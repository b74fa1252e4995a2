import ArgumentParser
import CFMDetector
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
        for file in try SeededWeightFiles.writeExtractors(seed: seed, to: URL(fileURLWithPath: out)) { print("wrote \(file.path)") }
    }
}
