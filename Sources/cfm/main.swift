import ArgumentParser
import CFMModels
import CFMTensor
import Foundation

/// The cfm command line: one binary for the daemon and every offline job.
struct CFM: ParsableCommand {
    static let version = "0.1.0"
    static let configuration = CommandConfiguration(
        commandName: "cfm",
        abstract: "Multimodal (RGB + 3D) industrial anomaly detection by crossmodal feature mapping.",
        version: version,
        subcommands: [Demo.self, Serve.self, Replay.self, Synth.self, InitWeights.self, Import.self, Train.self, Calibrate.self,
                      Eval.self, Infer.self, Extract.self, Bench.self, Keygen.self, Version.self])
}

/// `cfm version`: the tool version and the numerics backend.
struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version of cfm and of its numerics backend.")

    func run() {
        print("cfm \(CFM.version) (OpenBLAS single-threaded GEMMs on \(cpuCount) worker threads)")
    }
}

CFM.main()

/// A one-line reason for stopping that is not about the arguments' syntax (so no usage text):
/// missing data, a refused file, a failed run.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
