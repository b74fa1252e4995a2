import ArgumentParser
import CFMModels
import CFMTensor
import Foundation

/// `cfm demo`: the whole story on this machine with nothing to download.
///
/// So far: seeded random extractor weights of the real size, then the 2D extractor at every
/// tier with its time and achieved GFLOP/s. It grows with the pipeline.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the end-to-end demo (nothing to download).")

    @Option(help: "Working directory for the demo's files.") var work: String = "cfm-demo"
    @Option(help: "Timed frames per tier.") var frames: Int = 3

    func run() throws {
        let dir = URL(fileURLWithPath: work)
        let extractors = dir.appendingPathComponent("extractors")
        print("1. seeded random extractor weights (DINO ViT-B/8, full size) → \(extractors.path)")
        try InitWeights.write(seed: 0, to: extractors)
        print("2. 2D feature extraction of one 224×224 image, median of \(frames) frames:")
        print("   tier    blocks  extract2d ms  GFLOP/s  frame ms")
        for tier in Tier.allCases {
            try RandomMappers.write(tier: tier, seed: 0, to: dir.appendingPathComponent("mappers-\(tier.rawValue)"))
            let r = try BenchReport.measure(tier: tier, frames: frames, extractors: extractors,
                                            model: dir.appendingPathComponent("mappers-\(tier.rawValue)"))
            let name = tier.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0)
            print("   \(name)" + String(format: " %6d  %12.1f  %7.1f  %11.1f", tier.blocks,
                         r.stagesMs.first { $0.name == "extract2d" }!.ms, r.gflopsPerSecond["extract2d"]!, r.medianMs))
        }
    }
}
