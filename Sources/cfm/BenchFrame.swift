import ArgumentParser
import CFMData
import CFMService
import CFMTensor
import Foundation

/// `--sensor-size`: a side (`800`, square) or `WIDTHxHEIGHT` (`2448x2048`).
struct SensorSize: ExpressibleByArgument {
    let width: Int, height: Int

    init(width: Int, height: Int) { (self.width, self.height) = (width, height) }

    init?(argument: String) {
        let sides = argument.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
        guard (1...2).contains(sides.count), sides.allSatisfy({ ($0 ?? 0) >= 1 }) else { return nil }
        (width, height) = (sides[0]!, sides.last!!)
    }

    var defaultValueDescription: String { width == height ? "\(width)" : "\(width)x\(height)" }
}

/// The benchmark frame (`BenchScene`) as a sensor sends it.
enum BenchFrame {
    /// The frame as a protocol-v1 wire message (rgb8, XYZ float32 in metres).
    static func message(width: Int, height: Int) -> [[UInt8]] {
        let (rgb, cloud) = BenchScene.make(width: width, height: height)
        return FrameCodec.encode(Frame(frameId: "bench", rgb: rgb, cloud: cloud))
    }
}
