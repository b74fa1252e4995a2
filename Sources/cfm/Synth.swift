import ArgumentParser
import CFMData
import Foundation

/// `cfm synth`: a synthetic dataset in the MVTec 3D-AD layout.
struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate a synthetic RGB + XYZ dataset in the MVTec 3D-AD layout.",
        discussion: """
            Parts on a tilted table seen from above by a pinhole RGB + XYZ sensor; classes \
            \(SyntheticClass.allCases.map(\.rawValue).joined(separator: ", ")); test defect types \
            \(SyntheticDefectType.allCases.dropFirst().map(\.rawValue).joined(separator: ", ")). \
            Same options, same bytes.
            """)

    @Option(help: "Output directory (created if missing).") var out: String
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Image width and height in pixels.") var size: Int = 400
    @Option(parsing: .upToNextOption, help: "Classes to generate (default: all).")
    var classes: [SyntheticClass] = SyntheticClass.allCases
    @Option(help: "Nominal training samples per class.") var train: Int = 20
    @Option(help: "Nominal validation samples per class.") var validation: Int = 8
    @Option(help: "Test samples per class and test folder (good and each defect type).") var testPerType: Int = 6

    func validate() throws {
        guard size >= 32 else { throw ValidationError("--size must be at least 32 pixels") }
        guard train >= 0, validation >= 0, testPerType >= 0 else { throw ValidationError("sample counts must not be negative") }
    }

    func run() throws {
        let start = Date()
        let options = SyntheticDataset.Options(size: size, seed: seed, classes: classes, trainCount: train,
                                               validationCount: validation, testCountPerType: testPerType)
        let count = try SyntheticDataset.generate(options, to: URL(fileURLWithPath: out))
        print("wrote \(count) samples of \(classes.count) classes (\(size)×\(size)) to \(out) in "
              + String(format: "%.1f s", Date().timeIntervalSince(start)))
    }
}

extension SyntheticClass: ExpressibleByArgument {}
