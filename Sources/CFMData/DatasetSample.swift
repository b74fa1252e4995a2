import CFMTensor
import Foundation

/// One sample of an MVTec 3D-AD class: the paired files of one file stem.
public struct DatasetSample: Sendable, Equatable {
    public let split: DatasetSplit
    /// `good` or the defect type (the sample's folder).
    public let defect: String
    /// The file stem shared by the sample's files, e.g. `003`.
    public let id: String
    /// Colour image: 8-bit RGB PNG (MVTec), or any colour file `SensorFiles` reads.
    public let rgb: URL
    /// 3-channel float32 TIFF, metres, (0,0,0) = no measurement (MVTec); or a depth image in
    /// metres (float32 TIFF) or counts (16-bit PNG or TIFF), back-projected with a camera.
    public let xyz: URL
    /// Ground-truth mask PNG (0 / 255); nil for nominal samples stored without one.
    public let gt: URL?

    public init(split: DatasetSplit, defect: String, id: String, rgb: URL, xyz: URL, gt: URL?) {
        self.split = split
        self.defect = defect
        self.id = id
        self.rgb = rgb
        self.xyz = xyz
        self.gt = gt
    }

    /// Whether the sample is defect-free.
    public var isNominal: Bool { defect == MVTec3DClass.nominal }

    /// `<defect>/<id>`, the sample's key in `scores.json` and `maps/`.
    public var key: String { "\(defect)/\(id)" }

    /// Reads the sample's files (`SensorFiles`: NaN and infinite coordinates are holes, a depth
    /// image is back-projected with `camera`) and checks that they have one size. A nominal
    /// sample without a mask file gets an all-zero mask.
    public func load(camera: DepthCamera? = nil) throws(DatasetError) -> LoadedSample {
        let image: RGBImage, cloud: Tensor, mask: GrayImage
        do throws(ImageFileError) {
            image = try SensorFiles.readColour(rgb)
            cloud = try SensorFiles.readGeometry(xyz, camera: camera).cloud
            if let gt { mask = try PNGFile.readGray(gt) } else { mask = GrayImage(height: image.height, width: image.width, repeating: 0) }
        } catch {
            throw .file(error)
        }
        let sizes = [("rgb", image.height, image.width), ("xyz", cloud.shape[0], cloud.shape[1]), ("gt", mask.height, mask.width)]
        if Set(sizes.map { "\($0.1)x\($0.2)" }).count > 1 {
            throw .sizeMismatch(sample: "\(split.rawValue)/\(key)",
                                detail: sizes.map { "\($0.0) \($0.1)×\($0.2)" }.joined(separator: ", ") + " differ")
        }
        return LoadedSample(sample: self, rgb: image, cloud: cloud, mask: mask)
    }
}

/// A sample's decoded data, all of one size H × W.
public struct LoadedSample: Sendable {
    public let sample: DatasetSample
    public let rgb: RGBImage
    /// [H, W, 3] float32, metres; (0, 0, 0) = no measurement.
    public let cloud: Tensor
    /// 0 = nominal, 255 = anomalous.
    public let mask: GrayImage
}
