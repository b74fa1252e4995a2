@testable import CFMService
import CFMData
import CFMDetector
import CFMModels
import CFMTensor
import Foundation
import Logging
import XCTest

/// One part sent to a running daemon (`EdgeService` over real libzmq, a real detector of small
/// random models, the default preprocessing) in every input layout of the protocol: XYZ with
/// zero holes, XYZ with NaN / infinite holes, float depth with NaN holes, 16-bit depth, and
/// every colour order. Layouts that convert to the same cloud and image must get the same
/// score and map, bit for bit.
final class FormatEquivalenceTests: XCTestCase {
    /// The part: a table at 0.5 m seen by a pinhole camera from above, a raised box with a
    /// step on it, and holes (no measurement) on the table and on the box. Depth is kept in
    /// counts of 1/1024 m, which float32 and 16-bit counts both hold exactly.
    static let (width, height) = (64, 48)
    static let intrinsics = Intrinsics(fx: 400, fy: 410, cx: 31.5, cy: 23.25)
    static let countsPerMetre = 1024.0

    static func depthCounts() -> [UInt16] {
        (0..<(width * height)).map { p in
            let (u, v) = (p % width, p / width)
            let hole = (u + 3 * v) % 37 == 0 || (u >= 40 && u < 44 && v >= 20 && v < 23)
            if hole { return 0 }
            let onBox = u >= 14 && u < 46 && v >= 12 && v < 36
            let onStep = onBox && u >= 30 && v >= 24
            return onStep ? 498 : onBox ? 502 : 512
        }
    }

    /// The XYZ cloud of depth `z(p)` in metres: ((u − cx)·z/fx, (v − cy)·z/fy, z) in double
    /// precision, rounded to float32; zero depth gives (0, 0, 0).
    static func pinholeCloud(_ z: (Int) -> Double) -> [Float] {
        let k = intrinsics
        return (0..<(width * height)).flatMap { p -> [Float] in
            let (u, v, depth) = (Double(p % width), Double(p / width), z(p))
            guard depth != 0 else { return [0, 0, 0] }
            return [Float((u - k.cx) * depth / k.fx), Float((v - k.cy) * depth / k.fy), Float(depth)]
        }
    }

    static func colour() -> RGBImage {
        RGBImage(height: height, width: width, bytes: (0..<(width * height)).flatMap { p -> [UInt8] in
            let (u, v) = (p % width, p / width)
            let onBox = u >= 14 && u < 46 && v >= 12 && v < 36
            return onBox ? [UInt8(200 - v), UInt8(60 + u), 40] : [UInt8(4 * u), UInt8(5 * v), 128]
        })
    }

    /// A detector with the real architectures at a small size (32×32 input, 16 groups of 8
    /// points) and seeded random weights; preprocessing at 32 pixels, defaults otherwise.
    static func detector(in dir: TempDir) throws -> (AnomalyDetector, Preprocessor) {
        let vitConfig = VisionTransformer.Config(imageSize: 32, patchSize: 8, dim: 32, heads: 2, depth: 2, mlpHidden: 128)
        let pointConfig = PointMAE.Config(groups: 16, members: 8, hidden1: 8, hidden2: 16, hidden3: 32, dim: 16, heads: 2,
                                          depth: 4, mlpHidden: 64, posHidden: 8)
        func weights(_ name: String, _ shapes: [(String, [Int])], seed: UInt64) throws -> SafeTensors {
            let url = URL(fileURLWithPath: dir.path(name))
            try SafeTensors.write(RandomWeights.generate(shapes, seed: seed), to: url)
            return try SafeTensors(contentsOf: url)
        }
        let vit = try VisionTransformer(weights: weights("vit.safetensors", vitConfig.parameterShapes, seed: 1), config: vitConfig, blocks: 2)
        let pointMAE = try PointMAE(weights: weights("pointmae.safetensors", pointConfig.parameterShapes, seed: 2), config: pointConfig,
                                    blocks: 4, featureBlocks: [1, 2, 3], batchNorm: .frame)
        let scorer = CrossmodalScorer(rgbToXYZ: .initial(inFeatures: 32, outFeatures: pointMAE.featureDim, seed: 3),
                                      xyzToRGB: .initial(inFeatures: pointMAE.featureDim, outFeatures: 32, seed: 4))
        var options = PreprocessOptions()
        options.size = 32
        return (AnomalyDetector(tier: .small, vit: vit, pointMAE: pointMAE, scorer: scorer), Preprocessor(options: options))
    }

    func testEveryLayoutOfOnePartGetsTheSameScoreFromTheDaemon() throws {
        let started = Date()
        let dir = TempDir()
        var config = serviceTestConfig(dir)
        config.output.publishMaps = true
        let (detector, preprocessor) = try Self.detector(in: dir)
        let stages = FrameStages(
            prepare: [DetectorProcessing.preparation(preprocessor)],
            infer: [DetectorProcessing.inference(detector: DetectorBox(detector), threshold: 1e9, model: "formats",
                                                 publishMaps: true)])
        let service = EdgeService(config: config, logger: Logger(label: "formats")) { _ in stages }
        let (thread, _) = startService(service)
        defer {
            service.requestStop()
            XCTAssertTrue(waitUntil(30) { thread.isFinished })
        }
        let sensor = try FakeSensor(input: config.input.endpoint, output: config.output.endpoint)
        usleep(300_000) // SUB join

        let (w, h) = (Self.width, Self.height)
        let counts = Self.depthCounts()
        let holes = Set(counts.indices.filter { counts[$0] == 0 })
        XCTAssertGreaterThan(holes.count, 50)
        let cloud = Self.pinholeCloud { Double(counts[$0]) / Self.countsPerMetre }
        let rgb = Self.colour()
        let part = Frame(frameId: "part", unit: .m, rgb: rgb, cloud: Tensor(shape: [h, w, 3], scalars: cloud))

        // Every message (its frame id is its name): the header the codec writes for the
        // layout, the payloads built here.
        func message(_ id: String, rgb format: RGBFormat = .rgb8, colour: [UInt8]? = nil, xyz: XYZFormat = .xyz,
                     geometry: [UInt8], depthScale: Double? = nil) -> [[UInt8]] {
            var frame = part
            frame.frameId = id
            var parts = FrameCodec.encode(frame, rgb: format, xyz: xyz, intrinsics: xyz.isDepth ? Self.intrinsics : nil, depthScale: depthScale)
            if let colour { parts[2] = colour }
            parts[3] = geometry
            return parts
        }
        func littleEndian(_ counts: [UInt16]) -> [UInt8] { counts.flatMap { (c: UInt16) -> [UInt8] in [UInt8(c & 0xFF), UInt8(c >> 8)] } }
        let rgbBytes = rgb.bytes, pixels = w * h
        func reorder(_ order: [Int?]) -> [UInt8] { // source channel per output byte; nil = alpha 255
            (0..<pixels).flatMap { (p: Int) -> [UInt8] in order.map { (c: Int?) -> UInt8 in c.map { rgbBytes[3 * p + $0] } ?? 255 } }
        }
        let luma: [UInt8] = (0..<pixels).map { (p: Int) -> UInt8 in
            let (r, g, b): (Double, Double, Double) = (Double(rgbBytes[3 * p]), Double(rgbBytes[3 * p + 1]), Double(rgbBytes[3 * p + 2]))
            let y: Double = 0.299 * r + 0.587 * g + 0.114 * b
            return UInt8(y.rounded())
        }
        var nanHoles = cloud, infiniteHoles = cloud
        for p in holes {
            for c in 0..<3 { nanHoles[3 * p + c] = .nan }
            infiniteHoles[3 * p + 2] = p % 2 == 0 ? .infinity : -.infinity
        }
        let depthNaN: [Float] = (0..<pixels).map { (p: Int) -> Float in holes.contains(p) ? .nan : Float(Double(counts[p]) / Self.countsPerMetre) }
        // 16-bit depth at the default scale (1 mm per count): the same counts are other depths,
        // compared with the XYZ frame built from those depths.
        let millimetreCloud = Self.pinholeCloud { Double(counts[$0]) * DepthCamera.defaultDepthScale }

        let messages: [(name: String, parts: [[UInt8]])] = [
            ("xyz_f32le zero holes", message("xyz_f32le zero holes", geometry: FrameCodec.littleEndianBytes(cloud))),
            ("xyz_f32le NaN holes", message("xyz_f32le NaN holes", geometry: FrameCodec.littleEndianBytes(nanHoles))),
            ("xyz_f32le ±inf holes", message("xyz_f32le ±inf holes", geometry: FrameCodec.littleEndianBytes(infiniteHoles))),
            ("depth_f32le NaN holes", message("depth_f32le NaN holes", xyz: .depthF32, geometry: FrameCodec.littleEndianBytes(depthNaN))),
            ("depth_u16le 1/1024 m", message("depth_u16le 1/1024 m", xyz: .depthU16, geometry: littleEndian(counts), depthScale: 1 / Self.countsPerMetre)),
            ("bgr8", message("bgr8", rgb: .bgr8, colour: reorder([2, 1, 0]), geometry: FrameCodec.littleEndianBytes(cloud))),
            ("rgba8", message("rgba8", rgb: .rgba8, colour: reorder([0, 1, 2, nil]), geometry: FrameCodec.littleEndianBytes(cloud))),
            ("bgra8", message("bgra8", rgb: .bgra8, colour: reorder([2, 1, 0, nil]), geometry: FrameCodec.littleEndianBytes(cloud))),
            ("mono8", message("mono8", rgb: .mono8, colour: luma, geometry: FrameCodec.littleEndianBytes(cloud))),
            ("rgb8 grey", message("rgb8 grey", colour: luma.flatMap { [$0, $0, $0] }, geometry: FrameCodec.littleEndianBytes(cloud))),
            ("depth_u16le 1 mm", message("depth_u16le 1 mm", xyz: .depthU16, geometry: littleEndian(counts))),
            ("xyz_f32le of the 1 mm depths", message("xyz_f32le of the 1 mm depths", geometry: FrameCodec.littleEndianBytes(millimetreCloud))),
        ]
        for m in messages { try sensor.send(m.parts) }
        let results = try sensor.results(messages.count, timeout: 120)
        XCTAssertEqual(results.count, messages.count)
        let byId = Dictionary(uniqueKeysWithValues: results.compactMap { r in r.frameId.map { ($0, r) } })
        var scores: [String: Float] = [:], maps: [String: [Float]] = [:]
        for m in messages {
            let result = try XCTUnwrap(byId[m.name], m.name)
            XCTAssertNil(result.error, "\(m.name): \(result.error?.description ?? "")")
            scores[m.name] = try XCTUnwrap(result.score, m.name)
            maps[m.name] = try XCTUnwrap(result.map, m.name)
        }
        let report = messages.map { "\($0.name) \(scores[$0.name]!)" }.joined(separator: "; ")
        print("format scores (\(String(format: "%.1f", Date().timeIntervalSince(started))) s): \(report)")

        func expectSame(_ names: [String], as reference: String) {
            for name in names {
                XCTAssertEqual(scores[name]!.bitPattern, scores[reference]!.bitPattern, "\(name) \(scores[name]!) vs \(reference) \(scores[reference]!)")
                let differing = zip(maps[name]!, maps[reference]!).filter { $0.bitPattern != $1.bitPattern }.count
                XCTAssertEqual(differing, 0, "\(name): \(differing) of \(maps[reference]!.count) map pixels differ from \(reference)'s")
            }
        }
        expectSame(["xyz_f32le NaN holes", "xyz_f32le ±inf holes", "depth_f32le NaN holes", "depth_u16le 1/1024 m",
                    "bgr8", "rgba8", "bgra8"], as: "xyz_f32le zero holes")
        expectSame(["mono8"], as: "rgb8 grey")
        expectSame(["depth_u16le 1 mm"], as: "xyz_f32le of the 1 mm depths")
        // The scores follow the input: other colours or other depths score differently.
        XCTAssertNotEqual(scores["rgb8 grey"], scores["xyz_f32le zero holes"])
        XCTAssertNotEqual(scores["depth_u16le 1 mm"], scores["xyz_f32le zero holes"])
    }

    /// The part written as files in every layout `SensorFiles` reads (`cfm infer`, datasets,
    /// `cfm replay`) gives what the wire decoder makes of the equivalent message: the same RGB
    /// bytes and the same cloud. Wrong files are refused with one line naming what was found.
    func testFilesInEveryLayoutReadAsTheWireDecodes() throws {
        let dir = TempDir()
        func url(_ name: String) -> URL { URL(fileURLWithPath: dir.path(name)) }
        let (w, h, pixels) = (Self.width, Self.height, Self.width * Self.height)
        let counts = Self.depthCounts()
        let cloud = Self.pinholeCloud { Double(counts[$0]) / Self.countsPerMetre }
        let part = Frame(frameId: "files", unit: .m, rgb: Self.colour(), cloud: Tensor(shape: [h, w, 3], scalars: cloud))
        let wire = try FrameCodec.decode(FrameCodec.encode(part))
        let monoMessage = FrameCodec.encode(part, rgb: .mono8)
        let wireMono = try FrameCodec.decode(monoMessage)
        let camera = DepthCamera(intrinsics: Self.intrinsics, depthScale: 1 / Self.countsPerMetre)

        var nanHoles = cloud
        for p in 0..<pixels where counts[p] == 0 { nanHoles[3 * p] = .nan; nanHoles[3 * p + 1] = .nan; nanHoles[3 * p + 2] = .nan }
        let depth: [Float] = (0..<pixels).map { (p: Int) -> Float in counts[p] == 0 ? .nan : Float(Double(counts[p]) / Self.countsPerMetre) }
        try TIFFFile.write(Tensor(shape: [h, w, 3], scalars: nanHoles), to: url("xyz.tiff"))
        try TIFFFile.write(Tensor(shape: [h, w], scalars: depth), to: url("depth.tiff"), layout: .init(compression: .deflate, tileSize: 16))
        try TIFFFile.write(TIFFRaster(height: h, width: w, channels: 1, samples: .uint16(counts)), to: url("depth16.tiff"))
        try PNGFile.writeDepth(counts, height: h, width: w, to: url("depth16.png"))
        for (file, format) in [("xyz.tiff", XYZFormat.xyz), ("depth.tiff", .depthF32), ("depth16.tiff", .depthU16), ("depth16.png", .depthU16)] {
            let read = try SensorFiles.readGeometry(url(file), camera: camera)
            XCTAssertEqual(read.format, format, file)
            XCTAssertEqual(read.cloud.shape, [h, w, 3], file)
            XCTAssertEqual(read.cloud.scalars, Array(wire.cloud), file)
        }

        let rgb = Array(part.rgb), grey = monoMessage[2]
        try PNGFile.write(RGBImage(height: h, width: w, bytes: rgb), to: url("rgb.png"))
        try PNGFile.write(GrayImage(height: h, width: w, bytes: grey), to: url("grey.png"))
        try TIFFFile.write(TIFFRaster(height: h, width: w, channels: 3, samples: .uint8(rgb)), to: url("rgb.tiff"))
        let rgba: [UInt8] = (0..<pixels).flatMap { (p: Int) -> [UInt8] in [rgb[3 * p], rgb[3 * p + 1], rgb[3 * p + 2], UInt8(p % 256)] }
        try TIFFFile.write(TIFFRaster(height: h, width: w, channels: 4, samples: .uint8(rgba)), to: url("rgba.tiff"),
                           layout: .init(separatePlanes: true))
        try TIFFFile.write(TIFFRaster(height: h, width: w, channels: 1, samples: .uint8(grey)), to: url("grey.tiff"))
        for file in ["rgb.png", "rgb.tiff", "rgba.tiff"] { XCTAssertEqual(try SensorFiles.readColour(url(file)).bytes, Array(wire.rgb), file) }
        for file in ["grey.png", "grey.tiff"] { XCTAssertEqual(try SensorFiles.readColour(url(file)).bytes, Array(wireMono.rgb), file) }

        let frame = try SensorFiles.readFrame(rgb: url("rgba.tiff"), xyz: url("depth16.png"), camera: camera)
        XCTAssertEqual(frame.rgb.bytes, Array(wire.rgb))
        XCTAssertEqual(frame.cloud.scalars, Array(wire.cloud))

        func refusal(_ body: () throws -> Any) -> String {
            do { _ = try body(); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertEqual(refusal { try SensorFiles.readGeometry(url("depth16.png"), camera: nil) },
                       "\(url("depth16.png").path): a depth image (depth_u16le), expected its camera intrinsics fx, fy, cx, cy to back-project it")
        XCTAssertEqual(refusal { try SensorFiles.readGeometry(url("grey.tiff"), camera: camera) },
                       "\(url("grey.tiff").path): 1 channel of 8-bit unsigned integer, expected 3 float32 channels (XYZ), 1 float32 channel (depth) or 1 channel of 16-bit depth")
        XCTAssertEqual(refusal { try SensorFiles.readGeometry(url("grey.png"), camera: camera) },
                       "\(url("grey.png").path): 1 channel of 8-bit, expected 1 channel of 16-bit depth")
        XCTAssertEqual(refusal { try SensorFiles.readColour(url("depth16.tiff")) },
                       "\(url("depth16.tiff").path): 1 channel of 16-bit unsigned integer, expected 8-bit colour: 1 (grey), 3 (RGB) or 4 (RGBA) channels")
        try PNGFile.write(RGBImage(height: h, width: w - 1, bytes: [UInt8](repeating: 9, count: h * (w - 1) * 3)), to: url("narrow.png"))
        XCTAssertEqual(refusal { try SensorFiles.readFrame(rgb: url("narrow.png"), xyz: url("xyz.tiff"), camera: nil) },
                       "\(url("xyz.tiff").path): \(w)×\(h) pixels, expected the size of narrow.png, \(w - 1)×\(h)")
    }
}
