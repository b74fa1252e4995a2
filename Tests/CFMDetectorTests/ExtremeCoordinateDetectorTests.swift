import CFMData
import CFMDetector
import CFMTensor
import Testing

/// The detector on finite but extreme coordinates, as a frame reaches it when preprocessing
/// has no background removal (nothing then stands between the sensor's values and the
/// neighbour search): it must answer, never trap. Coordinates beyond ±1e6 m are refused
/// (their maps would be NaN and score 0, a pass); subnormal ones are scored.
extension PipelineParityTests {
    /// The reference input's foreground with every other point replaced by `extreme`.
    static let extremes: [(name: String, value: @Sendable (Int) -> [Float])] = [
        ("3e38", { _ in [3e38, 3e38, 3e38] }),
        ("1e20", { i in [1e20, 1e20 + Float(i) * 1e14, 1e20] }),
        ("-3e38", { _ in [-3e38, -3e38, 0.5] }),
        ("±3.4e38", { i in i % 4 == 0 ? [.greatestFiniteMagnitude, -.greatestFiniteMagnitude, 1] : [-.greatestFiniteMagnitude, 1, 1] }),
        ("subnormal", { i in [Float.leastNonzeroMagnitude * Float(i % 5 + 1), -1e-40, 1e-39] }),
        ("mixed", { i in [[3e38, -1e20, 1e-45, 0.2][i % 4], [1e20, 0.1, -3e38][i % 3], 0.5] }),
    ]

    @Test(arguments: extremes.indices) func extremeCoordinatesAreRefusedOrScored(_ e: Int) throws {
        let (name, value) = Self.extremes[e]
        var xyz = try fx.tensor("xyz_input")
        var replaced = 0
        for p in 0..<xyz.scalars.count / 3 where xyz.scalars[3 * p] != 0 && xyz.scalars[3 * p + 1] != 0 && xyz.scalars[3 * p + 2] != 0 {
            replaced += 1
            if replaced % 2 == 0 { xyz.scalars[3 * p..<3 * p + 3] = value(p)[...] }
        }
        var times = StageTimes()
        let input = ModelInput(rgb: try fx.tensor("rgb_input"), xyz: xyz)
        if xyz.scalars.contains(where: { abs($0) > 1e6 }) {
            #expect(throws: DetectorError.badInput("XYZ input has a coordinate beyond ±1e6 m"), "\(name)") {
                try detector.detect(input, times: &times)
            }
        } else {
            let (detection, _) = try detector.detect(input, times: &times)
            #expect(detection.score.isFinite && detection.anomalyMap.shape == [32, 32], "\(name)")
        }
    }

    /// Through the preprocessor as the daemon runs it, with and without background removal:
    /// a 40×40 frame whose object pixels are `extreme`.
    @Test(arguments: extremes.indices, [false, true]) func extremeFramesPreprocessAndScore(_ e: Int, _ removeBackground: Bool) throws {
        let (name, value) = Self.extremes[e]
        let (h, w) = (40, 40)
        var cloud = Tensor(shape: [h, w, 3])
        for v in 0..<h {
            for u in 0..<w {
                let p = v * w + u, onObject = (12..<28).contains(v) && (12..<28).contains(u)
                cloud.scalars[3 * p..<3 * p + 3] = (onObject ? value(p) : [(Float(u) - 19.5) * 0.005, (Float(v) - 19.5) * 0.005, 0.5])[...]
            }
        }
        var options = PreprocessOptions()
        options.size = 32
        options.removeBackground = removeBackground
        options.background.iterations = 50
        let rgb = RGBImage(height: h, width: w, bytes: (0..<h * w * 3).map { UInt8($0 % 251) })
        let frame = try Preprocessor(options: options)(rgb: rgb, cloud: cloud)
        var times = StageTimes()
        if frame.input.xyz.scalars.contains(where: { abs($0) > 1e6 }) {
            #expect(throws: DetectorError.badInput("XYZ input has a coordinate beyond ±1e6 m"), "\(name)") {
                try detector.detect(frame.input, times: &times)
            }
        } else {
            do {
                #expect(try detector.detect(frame.input, times: &times).0.score.isFinite, "\(name)")
            } catch DetectorError.tooFewPoints {
                // Background removal may leave nothing of such a frame: a clear answer too.
            }
        }
    }
}
