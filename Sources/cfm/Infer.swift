import ArgumentParser
import CFMData
import CFMDetector
import CFMTensor
import Foundation

/// `cfm infer`: one frame from files, end to end, with everything a person needs to judge it.
struct Infer: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score one RGB + XYZ frame: result.json, anomaly_map.tiff, overlay.png (and --dump features).",
        discussion: """
            Inputs in every layout the wire protocol carries: colour as PNG (RGB, RGBA, grey, palette) or \
            8-bit TIFF (RGB, RGBA, grey); geometry as XYZ float32 TIFF (--unit), depth float32 TIFF (--unit) \
            or 16-bit PNG/TIFF (--depth-scale metres per count), a depth image with --intrinsics fx,fy,cx,cy. \
            NaN or infinite coordinates and zero depth are holes (no measurement).

            result.json has the score, verdict, threshold, stage times and, with a calibrated bundle, \
            the defect regions in sensor pixels (as the daemon's results). overlay.png is a panel at \
            the sensor's resolution: RGB | height above the support plane | heat map anchored at the \
            threshold with the regions boxed, score and verdict in the header.
            """)

    @Option(help: "Colour image: PNG, or 8-bit TIFF of RGB, RGBA or grey.") var rgb: String
    @Option(help: "Geometry, pixel-registered with the colour image: XYZ (3-channel float32 TIFF) or depth (1-channel float32 TIFF, 16-bit PNG or TIFF; needs --intrinsics).")
    var xyz: String
    @OptionGroup var depth: DepthOptions
    @OptionGroup var extractor: ExtractorOptions
    @Option(help: "Model bundle directory (cfm train); its manifest sets tier, BatchNorm mode and preprocessing.") var model: String
    @OptionGroup var unit: UnitOption
    @Option(help: "Output directory.") var out: String
    @Flag(help: "Also write features.safetensors with every intermediate tensor.") var dump = false

    func run() throws {
        let (image, cloud, format) = try SensorFiles.readFrame(rgb: URL(fileURLWithPath: rgb), xyz: URL(fileURLWithPath: xyz), camera: depth.camera)
        let detector = try extractor.detector(model: model)
        var times = StageTimes()
        let cloudUnit = format.cloudUnit(declared: unit.unit)
        let frame = try times.measure("preprocess") { try detector.weights.preprocessor(rgb: image, cloud: cloud, unit: cloudUnit) }
        let (detection, features) = try detector.detect(frame.input, times: &times)
        let threshold = detector.manifest?.calibration?.threshold
        let verdict = threshold.map { detection.score > $0 ? "reject" : "pass" } ?? "uncalibrated"
        let outDir = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)

        try TIFFFile.write(detection.anomalyMap.reshaped([detector.inputSize, detector.inputSize, 1]),
                           to: outDir.appendingPathComponent("anomaly_map.tiff"))
        let frameId = URL(fileURLWithPath: rgb).deletingPathExtension().lastPathComponent
        let heights = frame.background?.plane.map { HeightField(cloud: cloud, unit: cloudUnit, plane: $0) }
        try PNGFile.write(OverlayPanel.render(rgb: image, heights: heights, map: detection.anomalyMap, score: detection.score,
                                              threshold: threshold, title: frameId),
                          to: outDir.appendingPathComponent("overlay.png"), compression: .fast)
        let grid = SensorMapGrid(sensorHeight: image.height, sensorWidth: image.width, mapSize: detector.inputSize)
        let regions = threshold.map { DefectRegions(map: detection.anomalyMap, score: detection.score, threshold: $0, grid: grid) }
        if dump {
            try SafeTensors.write(detector.dump(frame.input, features, detection),
                                  metadata: ["tier": detector.tier.rawValue], to: outDir.appendingPathComponent("features.safetensors"))
        }
        var result: [String: Any] = [
            "frame_id": frameId,
            "score": detection.score, "verdict": verdict, "tier": detector.tier.rawValue,
            "latency_ms": times.total,
            "stages_ms": Dictionary(uniqueKeysWithValues: times.stages.map { ($0.name, $0.ms) }),
            "foreground_points": frame.foregroundPoints, "valid_pixels": detection.validPixels,
            "background_removal": frame.background.map { ["plane_found": $0.planeFound, "removed_by_plane": $0.removedByPlane,
                                                          "removed_by_cluster": $0.removedByCluster] as [String: Any] } ?? "off",
        ]
        result["threshold"] = threshold ?? NSNull()
        result["regions"] = regions.map { $0.regions.map { ["box": $0.box, "area": $0.area, "peak": $0.peak] as [String: Any] } } ?? NSNull()
        result["regions_total"] = regions?.total ?? NSNull()
        try writeJSON(result, to: outDir.appendingPathComponent("result.json"))
        print("\(verdict) score \(String(format: "%.4f", detection.score))" + (threshold.map { String(format: " threshold %.4f", $0) } ?? ""))
    }
}
