import Foundation

/// The folder layouts a class folder can have; both read as `MVTec3DClass` samples.
public enum DatasetLayout: String, CaseIterable, Sendable {
    /// MVTec 3D-AD: `{train,validation}/good/{rgb,xyz}`, `test/<good or defect>/{rgb,xyz,gt}`.
    case mvtec3d
    /// Eyecandies as the official CFM preprocessing converts it (the paper's second benchmark):
    /// `train/good/{rgb,xyz}/NNN.{png,tiff}` and `test/{good,bad}/{rgb,xyz,gt}/NNN.{png,tiff,png}`,
    /// 512 × 512; no validation split; one defect folder, `bad`; masks are 3-channel PNGs
    /// (0 / 255 in every channel, read as grey) and `good` has all-zero ones. The XYZ files hold
    /// the back-projected depth with the background already cut by that preprocessing.
    case eyecandies

    /// The single defect folder of the Eyecandies layout.
    public static let eyecandiesDefect = "bad"

    /// The layout of the class folder `directory`: Eyecandies when it has no `validation`
    /// folder and its `test` folder holds `bad`, MVTec 3D-AD otherwise.
    public init(classDirectory directory: URL) {
        let validation = directory.appendingPathComponent(DatasetSplit.validation.rawValue)
        let bad = directory.appendingPathComponent(DatasetSplit.test.rawValue).appendingPathComponent(Self.eyecandiesDefect)
        self = !DatasetListing.isDirectory(validation) && DatasetListing.isDirectory(bad) ? .eyecandies : .mvtec3d
    }

    /// The splits the layout has.
    public var splits: [DatasetSplit] {
        switch self {
        case .mvtec3d: DatasetSplit.allCases
        case .eyecandies: [.train, .test]
        }
    }
}
