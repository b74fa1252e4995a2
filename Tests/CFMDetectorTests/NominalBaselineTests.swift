import CFMData
import CFMDetector
import CFMTensor
import Testing

@Suite struct NominalBaselineTests {
    static let size = 60
    static let boxRows = 15..<45, boxColumns = 10..<50
    /// The raised plate (2 mm above the box) and the stain of the defective frame.
    static let bumpRows = 20..<26, bumpColumns = 15..<21
    static let stainRows = 30..<36, stainColumns = 35..<41

    /// A 60×60 frame: a tilted table at ~0.5 m (5 mm pixel pitch) under a 3 cm grey box whose top
    /// height and shade ripple a little from pixel to pixel (so the nominal spread is not zero).
    func frame(seed: Int, defective: Bool = false) -> (RGBImage, Tensor) {
        let n = Self.size
        var cloud = Tensor(shape: [n, n, 3])
        var bytes = [UInt8](repeating: 40, count: n * n * 3)
        for v in 0..<n {
            for u in 0..<n {
                let i = 3 * (v * n + u), ripple = Float((u * 7 + v * 3 + seed) % 5) - 2  // −2…2
                let onBox = Self.boxRows.contains(v) && Self.boxColumns.contains(u)
                let bump = defective && Self.bumpRows.contains(v) && Self.bumpColumns.contains(u)
                let stain = defective && Self.stainRows.contains(v) && Self.stainColumns.contains(u)
                let x = (Float(u) - 30.5) * 0.005, y = (Float(v) - 30.5) * 0.005
                let height: Float = onBox ? 0.03 + 0.0002 * ripple + (bump ? 0.002 : 0) : 0
                cloud.scalars[i] = x
                cloud.scalars[i + 1] = y
                cloud.scalars[i + 2] = 0.5 + 0.05 * x - height
                if onBox {
                    let grey = UInt8(120 + 3 * Int(ripple))
                    (bytes[i], bytes[i + 1], bytes[i + 2]) = stain ? (200, 40, 30) : (grey, grey, grey)
                }
            }
        }
        return (RGBImage(height: n, width: n, bytes: bytes), cloud)
    }

    func preprocess(_ frame: (RGBImage, Tensor), removeBackground: Bool = true) throws -> PreprocessedFrame {
        var options = PreprocessOptions()
        options.size = Self.size  // no resizing: pixels stay where the test put them
        options.removeBackground = removeBackground
        return try Preprocessor(options: options)(rgb: frame.0, cloud: frame.1)
    }

    func nominalBaseline() throws -> NominalBaseline {
        try NominalBaseline.fit((0..<3).map { try preprocess(frame(seed: $0)) })
    }

    @Test func fitsColourAndHeightAboveThePlaneOfTheNominalBox() throws {
        let baseline = try nominalBaseline()
        #expect(baseline.pixels == 3 * 30 * 40)
        // The table's slope is 0.05 in z per x: heights are measured along its normal.
        let cosTilt = 1 / (1 + 0.05 * 0.05).squareRoot()
        #expect(abs(Double(baseline.heightMean) - 0.03 * cosTilt) < 2e-5, "\(baseline.heightMean)")
        #expect(baseline.heightStd > 1e-4 && baseline.heightStd < 4e-4, "\(baseline.heightStd)")
        #expect(abs(baseline.colourMean.x - 120 / 255) < 1e-3 && baseline.colourMean == SIMD3(repeating: baseline.colourMean.x))
        #expect(baseline.colourStd.x > 4 / 255 && baseline.colourStd.x < 6 / 255, "\(baseline.colourStd)")
    }

    @Test func pointsAtTheStainInColourAndAtTheBumpInHeight() throws {
        let baseline = try nominalBaseline()
        let defective = try baseline.detect(preprocess(frame(seed: 7, defective: true)))
        let nominal = try baseline.detect(preprocess(frame(seed: 7)))
        let n = Self.size
        func peak(_ map: Tensor) -> (row: Int, column: Int) {
            let i = map.scalars.indices.max { map.scalars[$0] < map.scalars[$1] }!
            return (i / n, i % n)
        }
        let colourPeak = peak(defective.psi2d), heightPeak = peak(defective.psi3d)
        #expect(Self.stainRows.contains(colourPeak.row) && Self.stainColumns.contains(colourPeak.column), "\(colourPeak)")
        #expect(Self.bumpRows.contains(heightPeak.row) && Self.bumpColumns.contains(heightPeak.column), "\(heightPeak)")
        #expect(defective.score > nominal.score, "\(defective.score) vs \(nominal.score)")
        #expect(defective.validPixels == 30 * 40)

        // ψ2D at a stain pixel by hand; nothing off the box.
        let stain = SIMD3<Float>(200, 40, 30) / 255
        let z = (stain - baseline.colourMean) / baseline.colourStd
        let pixel = 32 * n + 37
        #expect(abs(defective.psi2d.scalars[pixel] - ((z * z).sum() / 3).squareRoot()) < 1e-3)
        for v in 0..<n where !Self.boxRows.contains(v) {
            #expect(defective.psi2d.scalars[(v * n)..<(v * n + n)].allSatisfy { $0 == 0 })
            #expect(defective.psi3d.scalars[(v * n)..<(v * n + n)].allSatisfy { $0 == 0 })
        }
    }

    @Test func refusesFramesWithoutASupportPlane() throws {
        let baseline = try nominalBaseline()
        let bare = try preprocess(frame(seed: 1), removeBackground: false)
        #expect(throws: DetectorError.self) { try baseline.detect(bare) }
        #expect(throws: DetectorError.self) { try NominalBaseline.fit([PreprocessedFrame]()) }
    }
}
