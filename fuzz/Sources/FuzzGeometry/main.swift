import CFMGeometry
import CFMTensor

/// Background removal with few, small hypotheses, so one input runs in microseconds.
let quickRemoval: BackgroundRemovalOptions = {
    var options = BackgroundRemovalOptions()
    options.borderWidth = 1
    options.sampleSize = 3
    options.iterations = 8
    return options
}()

/// One organized cloud: byte 0 and 1 give its width and height (1…16), the rest are its
/// Float32 little-endian coordinates (zero where the input ends), with every non-finite
/// value replaced by its bit pattern's low byte (the geometry's contract is finite input).
/// Every geometry step of the detector runs on it, with and without background removal;
/// none may trap, and each result has the documented shape.
func checkGeometry(_ bytes: [UInt8]) {
    guard bytes.count >= 2 else { return }
    let width = Int(bytes[0] % 16) + 1, height = Int(bytes[1] % 16) + 1
    var coordinates = [Float](repeating: 0, count: width * height * 3)
    for i in coordinates.indices where 2 + 4 * i + 4 <= bytes.count {
        let b = 2 + 4 * i
        let bits = UInt32(bytes[b]) | UInt32(bytes[b + 1]) << 8 | UInt32(bytes[b + 2]) << 16 | UInt32(bytes[b + 3]) << 24
        let value = Float(bitPattern: bits)
        coordinates[i] = value.isFinite ? value : Float(bits & 0xFF)
    }
    let cloud = try! OrganizedCloud(height: height, width: width, coordinates: coordinates)
    var cleaned = cloud
    _ = try! cleaned.removeBackground(options: quickRemoval)
    for candidate in [cloud, cleaned] {
        let foreground = ForegroundPoints(of: candidate)
        let n = foreground.count
        guard n >= 1 else { continue }
        let sample = try! farthestPointSampling(foreground.points, count: min(8, n) + 1)
        precondition(sample.indices.allSatisfy { (0..<n).contains($0) })
        let k = min(4, n)
        let nearest = try! NearestNeighbours(of: sample.centres, in: foreground.points, k: k)
        precondition(nearest.indices.allSatisfy { (0..<n).contains($0) })
        precondition(nearest.squaredDistances.allSatisfy { $0 >= 0 })
        _ = try! nearest.neighbourhoods(of: sample.centres, in: foreground.points)
        guard sample.centres.shape[0] >= 3 else { continue }
        let blend = try! InverseDistanceInterpolation(points: foreground.points, centres: sample.centres)
        _ = try! foreground.scatter(try! blend.interpolate(sample.centres))
    }
}

/// libFuzzer's entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGeometry(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    checkGeometry(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}
