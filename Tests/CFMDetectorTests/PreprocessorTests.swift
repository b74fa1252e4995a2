import CFMData
import CFMDetector
import CFMGeometry
import CFMTensor
import Testing

@Suite struct PreprocessorTests {
    /// A 40×60 frame: a tilted table plane at ~0.5 m (5 mm pixel pitch) with a 3 cm box on it.
    func frame() -> (RGBImage, Tensor) {
        let (h, w) = (40, 60)
        var cloud = Tensor(shape: [h, w, 3])
        var bytes = [UInt8](repeating: 0, count: h * w * 3)
        for v in 0..<h {
            for u in 0..<w {
                let onBox = (15..<25).contains(v) && (20..<40).contains(u)
                let x = (Float(u) - 30.5) * 0.005, y = (Float(v) - 20.5) * 0.005  // never exactly 0: that means "no point"
                let i = 3 * (v * w + u)
                cloud.scalars[i] = x
                cloud.scalars[i + 1] = y
                cloud.scalars[i + 2] = 0.5 + 0.05 * x - (onBox ? 0.03 : 0)
                bytes[i] = UInt8(u * 4); bytes[i + 1] = UInt8(v * 6); bytes[i + 2] = onBox ? 255 : 0
            }
        }
        return (RGBImage(height: h, width: w, bytes: bytes), cloud)
    }

    @Test func removesTheTableKeepsTheBoxAndNormalises() throws {
        var options = PreprocessOptions()
        options.size = 30
        let (rgb, cloud) = frame()
        let out = try Preprocessor(options: options)(rgb: rgb, cloud: cloud)
        #expect(out.background?.planeFound == true)
        #expect(out.foregroundPoints == 200, "\(String(describing: out.background))")  // the 10×20 box
        #expect(out.input.xyz.shape == [30, 30, 3] && out.input.rgb.shape == [3, 30, 30])
        // Padding rows (top 5 and bottom 5 of the square) have no points.
        #expect(out.input.xyz.scalars[0..<(5 * 30 * 3)].allSatisfy { $0 == 0 })
        // ImageNet normalisation of the blue channel: 0 → −0.406/0.225 on the table.
        let blue: Float = out.input.rgb.scalars[2 * 900 + 15 * 30 + 2], expected: Float = -0.406 / 0.225
        #expect(abs(blue - expected) < 1e-5)
    }

    /// Preprocessing the frame's own cloud (what `cfm serve` does) gives the copying call's
    /// result, in millimetres and with holes too, and edits that cloud in place: it ends in
    /// metres with the background removed, in the same storage.
    @Test func editingTheCloudInPlaceEqualsCopyingIt() throws {
        var options = PreprocessOptions()
        options.size = 30
        let preprocessor = Preprocessor(options: options), workspace = PreprocessWorkspace()
        let (rgb, metres) = frame()
        var cloud = Tensor(shape: metres.shape, scalars: metres.scalars.map { $0 * 1000 })
        for c in 0..<3 { cloud.scalars[3 * (12 * 60 + 7) + c] = .nan }
        let original = cloud.scalars.map(\.bitPattern)  // a copy, not a second reference to the storage
        var times = StageTimes()
        let copied = try preprocessor(rgb: rgb, cloud: cloud, unit: .mm, workspace: workspace, times: &times)
        #expect(cloud.scalars.map(\.bitPattern) == original, "the copying call leaves the cloud as it was")

        let storage = cloud.withUnsafeBufferPointer { $0.baseAddress }
        let edited = try cloud.withUnsafeMutableBufferPointer { c in
            try rgb.withView { rgb in
                try preprocessor(rgb: rgb, editing: OrganizedCloudView(height: 40, width: 60, coordinates: c), unit: .mm,
                                 workspace: workspace, times: &times)
            }
        }
        #expect(edited.input.xyz.scalars == copied.input.xyz.scalars && edited.input.rgb.scalars == copied.input.rgb.scalars)
        #expect(edited.foregroundPoints == copied.foregroundPoints && edited.foregroundPoints == 200)
        #expect(cloud.shape == metres.shape && cloud.withUnsafeBufferPointer { $0.baseAddress } == storage, "edited in place")
        #expect(try OrganizedCloud(cloud).foregroundCount == 200, "the table removed")
        let onBox = 3 * (20 * 60 + 30)
        #expect(abs(cloud.scalars[onBox + 2] - metres.scalars[onBox + 2]) < 1e-6, "in metres")
        let finite = cloud.scalars.allSatisfy { $0.isFinite }
        #expect(finite, "holes are zeros")
    }

    @Test func millimetresAreConvertedNonFiniteIsAHoleAndBadCloudsRefused() throws {
        var options = PreprocessOptions()
        options.size = 30
        options.removeBackground = false
        let (rgb, cloud) = frame()
        let mm = Tensor(shape: cloud.shape, scalars: cloud.scalars.map { $0 * 1000 })
        let a = try Preprocessor(options: options)(rgb: rgb, cloud: cloud)
        let b = try Preprocessor(options: options)(rgb: rgb, cloud: mm, unit: .mm)
        #expect(a.input.xyz.maxAbsDifference(b.input.xyz) < 1e-6)

        // A pixel with any NaN or infinite coordinate is a hole, exactly like (0, 0, 0).
        var zeroHoles = cloud, nonFinite = cloud
        for (p, values) in [(7 * 60 + 9, [Float.nan, 0.1, 0.5]), (30 * 60 + 2, [0.1, .infinity, 0.5]), (1, [0.1, 0.1, -.infinity])] {
            for c in 0..<3 { zeroHoles.scalars[3 * p + c] = 0; nonFinite.scalars[3 * p + c] = values[c] }
        }
        let holes = try Preprocessor()(rgb: rgb, cloud: zeroHoles), nans = try Preprocessor()(rgb: rgb, cloud: nonFinite)
        #expect(nans.input.xyz.scalars == holes.input.xyz.scalars && nans.input.rgb.scalars == holes.input.rgb.scalars)
        #expect(nans.foregroundPoints == holes.foregroundPoints)
        #expect(throws: DetectorError.self) { try Preprocessor()(rgb: rgb, cloud: Tensor(shape: [40, 59, 3])) }
    }

    /// The frame turned on its side (rows ↔ columns): a tall frame.
    func tallFrame() -> (RGBImage, Tensor) {
        let (rgb, cloud) = frame()
        let (h, w) = (rgb.width, rgb.height)
        var bytes = [UInt8](repeating: 0, count: h * w * 3), scalars = [Float](repeating: 0, count: h * w * 3)
        for y in 0..<h {
            for x in 0..<w {
                for c in 0..<3 {
                    bytes[3 * (y * w + x) + c] = rgb.bytes[3 * (x * h + y) + c]
                    scalars[3 * (y * w + x) + c] = cloud.scalars[3 * (x * h + y) + c]
                }
            }
        }
        return (RGBImage(height: h, width: w, bytes: bytes), Tensor(shape: [h, w, 3], scalars: scalars))
    }

    /// Preprocessing spelled out step by step with full-size intermediates: holes to zero, then
    /// metres, background removal, the padded squares, then the resizes and the normalisation.
    func reference(_ rgb: RGBImage, _ cloud: Tensor, unit: LengthUnit, options: PreprocessOptions) throws
        -> (input: ModelInput, rgb: RGBImage, background: BackgroundRemovalReport?, foregroundPoints: Int) {
        let (h, w, s) = (rgb.height, rgb.width, options.size), side = max(rgb.height, rgb.width)
        var scalars = cloud.scalars
        for p in 0..<(h * w) where !(0..<3).allSatisfy({ scalars[3 * p + $0].isFinite }) {
            for c in 0..<3 { scalars[3 * p + c] = 0 }
        }
        var organized = try OrganizedCloud(height: h, width: w, coordinates: scalars.map { $0 * unit.metres })
        let report = options.removeBackground ? try organized.removeBackground(options: options.background) : nil
        let square = Tensor(shape: [side, side, 3], scalars: padToSquare(organized.coordinates, height: h, width: w, channels: 3, .constant(0)))
        let small = RGBImage(height: s, width: s, bytes: bicubicResize(
            padToSquare(rgb.bytes, height: h, width: w, channels: 3, .replicateEdge), height: side, width: side, channels: 3,
            outHeight: s, outWidth: s))
        var normalised = Tensor(shape: [3, s, s])
        for c in 0..<3 {
            for p in 0..<(s * s) { normalised.scalars[c * s * s + p] = (Float(small.bytes[3 * p + c]) / 255 - options.mean[c]) / options.std[c] }
        }
        return (ModelInput(rgb: normalised, xyz: nearestResize(square, outHeight: s, outWidth: s)), small, report, organized.foregroundCount)
    }

    /// Wide and tall frames, with holes, in millimetres, with and without background removal,
    /// up- and downscaled, through one workspace reused across sizes: the same input as the
    /// step-by-step reference, value for value.
    @Test(arguments: [false, true], [30, 80])
    func equalsTheStepByStepReference(removeBackground: Bool, size: Int) throws {
        var options = PreprocessOptions()
        (options.size, options.removeBackground) = (size, removeBackground)
        let preprocessor = Preprocessor(options: options), workspace = PreprocessWorkspace()
        for (rgb, metres) in [frame(), tallFrame(), frame()] {
            var cloud = Tensor(shape: metres.shape, scalars: metres.scalars.map { $0 * 1000 })
            (cloud.scalars[3 * 17 + 1], cloud.scalars[3 * 301 + 2], cloud.scalars[3 * 999]) = (.nan, .infinity, -.infinity)
            var times = StageTimes()
            let out = try preprocessor(rgb: rgb, cloud: cloud, unit: .mm, workspace: workspace, times: &times)
            let expected = try reference(rgb, cloud, unit: .mm, options: options)
            #expect(out.input.xyz == expected.input.xyz && out.input.rgb == expected.input.rgb && out.rgb == expected.rgb)
            #expect(out.background == expected.background && out.foregroundPoints == expected.foregroundPoints)
            let removal: [String] = switch (removeBackground, out.background?.plane) {
            case (false, _): []
            case (true, nil): ["plane"]
            case (true, _): ["plane", "clusters"]
            }
            #expect(times.stages.map(\.name) == ["holes_units"] + removal + ["resize"])
        }
    }
}
