import CFMTensor
import Foundation

/// The camera, table and lighting of one synthetic frame, and the ray caster that renders a part
/// on the table into pixel-registered RGB and XYZ.
///
/// The camera is an ideal pinhole at the origin looking along +z (x right, y down) with the
/// principal point at the image centre; its focal length makes the image 0.21 m wide at 0.5 m.
/// The table is a plane 0.48–0.52 m away, tilted by 1–5°; XYZ is the ray's hit point in metres
/// with depth noise along z, so every point stays on its pixel's ray.
struct SyntheticScene: Sendable {
    let size: Int
    /// Focal length in pixels.
    let focal: Float
    /// Unit normal of the table, pointing towards the camera.
    let tableNormal: SIMD3<Float>
    /// The point of the table on the optical axis.
    let tablePoint: SIMD3<Float>
    /// Where the part stands on the table, and its axes u, v on the table plane.
    let partOrigin: SIMD3<Float>
    let axisU: SIMD3<Float>, axisV: SIMD3<Float>
    /// Direction towards the light.
    let light: SIMD3<Float>
    let ambient: Float, diffuse: Float
    let gain: SIMD3<Float>
    /// Standard deviations of the depth noise (metres) and the colour noise (0…1).
    let depthNoise: Float, colorNoise: Float
    /// Fraction of pixels without a measurement.
    let dropoutRate: Float
    let tableTexture: ValueNoise
    /// Seed of the per-pixel noise.
    let pixelSeed: UInt64

    /// Width of the view at `referenceDistance`, which fixes the focal length.
    static let viewWidth: Float = 0.21, referenceDistance: Float = 0.5

    /// A random scene; the part's yaw about the table normal is drawn from `yaw` (radians).
    init(size: Int, yaw yawRange: ClosedRange<Float>, using random: inout SeededRandom) {
        self.size = size
        focal = Float(size) * Self.referenceDistance / Self.viewWidth
        let tilt = random.uniform(1, 5) * .pi / 180, tiltAxis = random.angle()
        tableNormal = normalized(SIMD3(tan(tilt) * cos(tiltAxis), tan(tilt) * sin(tiltAxis), -1))
        tablePoint = SIMD3(0, 0, random.uniform(0.48, 0.52))
        let shift = SIMD2(random.uniform(-0.015, 0.015), random.uniform(-0.015, 0.015)) * Float(size)
        let ray = SIMD3((shift.x + 0.5) / focal, (shift.y + 0.5) / focal, 1)
        partOrigin = ray * (dot(tableNormal, tablePoint) / dot(tableNormal, ray))
        let yaw = random.uniform(yawRange.lowerBound, yawRange.upperBound)
        let heading = SIMD3(cos(yaw), sin(yaw), 0)
        axisU = normalized(heading - dot(heading, tableNormal) * tableNormal)
        axisV = cross(tableNormal, axisU)
        light = normalized(SIMD3(random.uniform(-0.35, 0.35), random.uniform(-0.35, 0.35), -1))
        ambient = random.uniform(0.45, 0.55)
        diffuse = random.uniform(0.45, 0.55)
        let exposure = random.uniform(0.9, 1.1)
        gain = exposure * SIMD3(random.uniform(0.97, 1.03), 1, random.uniform(0.97, 1.03))
        depthNoise = random.uniform(0.0002, 0.0004)
        colorNoise = random.uniform(0.004, 0.008)
        dropoutRate = 0.002
        tableTexture = ValueNoise(seed: random.next())
        pixelSeed = random.next()
    }

    /// What one pixel sees.
    private struct Hit {
        var point: SIMD3<Float>
        var onPart: Bool
        /// Position in the part's frame.
        var uv: SIMD2<Float>
        var normal: SIMD3<Float>
    }

    /// What the sensor records at one pixel, with the pixel's ground truth.
    private struct SensorPixel {
        var rgb: SIMD3<UInt8> = .zero
        /// (0,0,0) for a dropped measurement.
        var xyz: SIMD3<Float> = .zero
        var onPart = false
        var anomalous = false
    }

    /// Ray-casts `part` into an RGB image, an XYZ cloud, the defect mask and the part's silhouette.
    func render<Part: SyntheticPart>(_ part: DefectivePart<Part>) -> SyntheticSample {
        var pixels = [SensorPixel](repeating: SensorPixel(), count: size * size)
        pixels.withUnsafeMutableBufferPointer { pixels in
            parallelChunks(size, minimumChunk: 8) { rows in
                for y in rows {
                    for x in 0..<size { pixels[y * size + x] = sense(x: x, y: y, part: part) }
                }
            }
        }
        var rgb = [UInt8](), xyz = [Float]()
        rgb.reserveCapacity(3 * pixels.count)
        xyz.reserveCapacity(3 * pixels.count)
        for pixel in pixels {
            for c in 0..<3 {
                rgb.append(pixel.rgb[c])
                xyz.append(pixel.xyz[c])
            }
        }
        return SyntheticSample(
            rgb: RGBImage(height: size, width: size, bytes: rgb),
            cloud: Tensor(shape: [size, size, 3], scalars: xyz),
            mask: GrayImage(height: size, width: size, bytes: pixels.map { $0.anomalous ? 255 : 0 }),
            objectMask: GrayImage(height: size, width: size, bytes: pixels.map { $0.onPart ? 255 : 0 }),
            focalLength: focal, tableNormal: tableNormal, tableOffset: -dot(tableNormal, tablePoint))
    }

    /// Pixel (x, y): the ray's hit, shaded, with colour noise, depth noise along z and dropouts
    /// drawn from the pixel's own random stream.
    private func sense<Part: SyntheticPart>(x: Int, y: Int, part: DefectivePart<Part>) -> SensorPixel {
        var noise = SeededRandom(seed: mix(pixelSeed, UInt64(y * size + x)))
        let hit = cast(x: x, y: y, part: part)
        let color = shade(hit, part: part, x: x, y: y)
        var pixel = SensorPixel()
        for c in 0..<3 {
            let v = (color[c] + colorNoise * noise.normal()) * 255
            pixel.rgb[c] = UInt8(min(max(v.rounded(), 0), 255))
        }
        let depth = depthNoise * noise.normal()
        if noise.uniform() >= dropoutRate { pixel.xyz = hit.point * (1 + depth / hit.point.z) }
        pixel.onPart = hit.onPart
        pixel.anomalous = hit.onPart && part.isAnomalous(at: hit.uv)
        return pixel
    }

    /// Height step of the ray march (metres); the rays are nearly vertical, so it moves them
    /// well under a millimetre sideways.
    private static let marchStep: Float = 0.0015

    /// Follows the ray of pixel (x, y) down from the part's top to the table.
    private func cast<Part: SyntheticPart>(x: Int, y: Int, part: DefectivePart<Part>) -> Hit {
        let center = Float(size) / 2
        let ray = SIMD3((Float(x) + 0.5 - center) / focal, (Float(y) + 0.5 - center) / focal, 1)
        // Height above the table along the ray: cameraHeight − t·descent.
        let descent = -dot(tableNormal, ray), cameraHeight = -dot(tableNormal, tablePoint)
        let rayU = dot(axisU, ray), rayV = dot(axisV, ray)
        let originU = dot(axisU, partOrigin), originV = dot(axisV, partOrigin)
        func distance(atHeight h: Float) -> Float { (cameraHeight - h) / descent }
        func uv(atHeight h: Float) -> SIMD2<Float> {
            let t = distance(atHeight: h)
            return SIMD2(t * rayU - originU, t * rayV - originV)
        }
        func isInside(_ h: Float) -> Bool {
            let surface = part.height(at: uv(atHeight: h))
            return surface > 0 && surface >= h
        }
        let tableHit = Hit(point: ray * distance(atHeight: 0), onPart: false, uv: uv(atHeight: 0), normal: tableNormal)
        let top = part.part.maxHeight
        let (entry, exit) = (uv(atHeight: top), tableHit.uv)
        guard distanceToSegment(.zero, entry, exit) < part.part.boundingRadius else { return tableHit }
        var above = top, h = top
        while h > 0 {
            h = max(h - Self.marchStep, 0)
            if isInside(h) { break }
            above = h
        }
        guard isInside(h) else { return tableHit }
        var below = h
        for _ in 0..<10 {  // brackets the surface to 1.5 µm
            let mid = (above + below) / 2
            if isInside(mid) { below = mid } else { above = mid }
        }
        let p = uv(atHeight: below)
        let e: Float = 0.0002
        let du = (part.height(at: p + SIMD2(e, 0)) - part.height(at: p - SIMD2(e, 0))) / (2 * e)
        let dv = (part.height(at: p + SIMD2(0, e)) - part.height(at: p - SIMD2(0, e))) / (2 * e)
        return Hit(point: ray * distance(atHeight: below), onPart: true, uv: p,
                   normal: normalized(tableNormal - du * axisU - dv * axisV))
    }

    /// The noiseless colour of a hit: Lambertian with ambient light, a specular highlight on
    /// shiny parts, the camera's gain and a slight vignette.
    private func shade<Part: SyntheticPart>(_ hit: Hit, part: DefectivePart<Part>, x: Int, y: Int) -> SIMD3<Float> {
        let albedo: SIMD3<Float>, shininess: Float
        if hit.onPart {
            albedo = part.albedo(at: hit.uv)
            shininess = part.part.specular(at: hit.uv)
        } else {
            albedo = SIMD3(0.50, 0.52, 0.55) * (1 + 0.06 * tableTexture.fractal(hit.uv / 0.012))
            shininess = 0
        }
        let lambert = max(0, dot(hit.normal, light))
        var color = albedo * (ambient + diffuse * lambert)
        if shininess > 0 {
            let halfway = normalized(light - normalized(hit.point))
            color += SIMD3(repeating: shininess * pow(max(0, dot(hit.normal, halfway)), 40))
        }
        let r = SIMD2(Float(x), Float(y)) / Float(size) - 0.5
        return color * gain * (1 - 0.3 * (r * r).sum())
    }
}

/// One rendered synthetic frame with its ground truth.
public struct SyntheticSample: Sendable {
    public let rgb: RGBImage
    /// [size, size, 3] float32, metres, camera frame; (0,0,0) where the sensor dropped the pixel.
    public let cloud: Tensor
    /// Defect ground truth: 255 where a defect is seen, else 0.
    public let mask: GrayImage
    /// 255 where the object (not the table) is seen.
    public let objectMask: GrayImage
    /// The pinhole camera's focal length in pixels; the principal point is the image centre, so
    /// pixel (x, y) sees along ((x + ½ − size/2) / f, (y + ½ − size/2) / f, 1).
    public let focalLength: Float
    /// The table plane n·p + d = 0: unit normal n (towards the camera) and offset d (metres).
    public let tableNormal: SIMD3<Float>
    public let tableOffset: Float
}
