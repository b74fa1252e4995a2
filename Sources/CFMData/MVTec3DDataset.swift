import Foundation

/// The splits of an MVTec 3D-AD class folder.
public enum DatasetSplit: String, CaseIterable, Sendable {
    case train, validation, test
}

/// A dataset root in the MVTec 3D-AD layout (`CLASS/{train,validation}/good/{rgb,xyz}`,
/// `CLASS/test/<defect or good>/{rgb,xyz,gt}`): one folder per object class.
/// Anything else in the root (licence files, `.DS_Store`, …) is ignored.
public struct MVTec3DDataset: Sendable {
    public let directory: URL

    /// Opens `directory`, which must exist.
    public init(directory: URL) throws(DatasetError) {
        guard DatasetListing.isDirectory(directory) else {
            throw .missingDirectory(path: directory.path, expected: "a dataset root with one folder per class")
        }
        self.directory = directory
    }

    /// The class folders (those holding a `train` or `test` folder), sorted.
    public func classNames() throws(DatasetError) -> [String] {
        try DatasetListing.subdirectories(of: directory).filter { name in
            let folder = directory.appendingPathComponent(name)
            return DatasetSplit.allCases.contains { DatasetListing.isDirectory(folder.appendingPathComponent($0.rawValue)) }
        }
    }

    /// The class folder `name`.
    public func `class`(_ name: String) throws(DatasetError) -> MVTec3DClass {
        try MVTec3DClass(directory: directory.appendingPathComponent(name))
    }
}

/// One object class of an MVTec 3D-AD dataset, `DATASET/CLASS`:
/// `{train,validation}/good/{rgb/NNN.png, xyz/NNN.tiff}` and
/// `test/<defect or good>/{rgb/NNN.png, xyz/NNN.tiff, gt/NNN.png}`. The `rgb` and `xyz`
/// files may be in any layout `SensorFiles` reads (a depth image needs the camera to load).
///
/// Samples pair the files of the `rgb`, `xyz` and `gt` folders by file stem. A `gt` folder is
/// required for defect types and optional for `good` (its masks are all zero); when present it
/// must pair like the others. Other entries (`calibration/`, `.DS_Store`, files with other
/// extensions) are ignored.
public struct MVTec3DClass: Sendable {
    public let directory: URL
    /// The folder name, e.g. `bagel`.
    public var name: String { directory.lastPathComponent }
    /// The class folder's layout, detected when opened.
    public let layout: DatasetLayout

    /// The name of nominal (defect-free) sample folders.
    public static let nominal = "good"

    /// Opens the class folder `directory`, which must exist.
    public init(directory: URL) throws(DatasetError) {
        guard DatasetListing.isDirectory(directory) else {
            throw .missingDirectory(path: directory.path, expected: "a class folder with train/validation/test splits")
        }
        self.directory = directory
        layout = DatasetLayout(classDirectory: directory)
    }

    /// The folder of `split`, which must exist.
    private func splitDirectory(_ split: DatasetSplit) throws(DatasetError) -> URL {
        let folder = directory.appendingPathComponent(split.rawValue)
        guard layout.splits.contains(split) else {
            throw .missingDirectory(path: folder.path, expected: "a \(split.rawValue) split, which the \(layout.rawValue) layout does not have")
        }
        guard DatasetListing.isDirectory(folder) else {
            throw .missingDirectory(path: folder.path, expected: "\(split.rawValue)/<good or defect type>/{rgb,xyz}")
        }
        return folder
    }

    /// The sample folders of `split` (`good` and the defect types), sorted.
    public func defectTypes(_ split: DatasetSplit) throws(DatasetError) -> [String] {
        try DatasetListing.subdirectories(of: splitDirectory(split))
    }

    /// Every sample of `split`, sorted by defect type, then by file stem.
    public func samples(_ split: DatasetSplit) throws(DatasetError) -> [DatasetSample] {
        var result = [DatasetSample]()
        for defect in try defectTypes(split) { result += try samples(split, defect: defect) }
        return result
    }

    /// The samples of one folder, `split/defect`, sorted by file stem.
    public func samples(_ split: DatasetSplit, defect: String) throws(DatasetError) -> [DatasetSample] {
        let folder = try splitDirectory(split).appendingPathComponent(defect)
        // Besides MVTec's PNG colour and XYZ TIFFs, any file `SensorFiles` reads: TIFF colour,
        // depth as float or 16-bit TIFF or 16-bit PNG.
        let rgb = try stems(folder, "rgb", extensions: ["png", "tiff", "tif"], required: true)!
        let xyz = try stems(folder, "xyz", extensions: ["tiff", "tif", "png"], required: true)!
        let gt = try stems(folder, "gt", extensions: ["png"], required: defect != Self.nominal)
        try requirePairs(rgb, xyz, partnerFolder: "xyz", partnerExtension: "tiff")
        try requirePairs(xyz, rgb, partnerFolder: "rgb", partnerExtension: "png")
        if let gt {
            try requirePairs(rgb, gt, partnerFolder: "gt", partnerExtension: "png")
            try requirePairs(gt, rgb, partnerFolder: "rgb", partnerExtension: "png")
        }
        return rgb.keys.sorted().map { id in
            DatasetSample(split: split, defect: defect, id: id, rgb: rgb[id]!, xyz: xyz[id]!, gt: gt?[id])
        }
    }

    /// The files of `folder/kind` with one of `extensions`, by stem; nil if the folder is optional and absent.
    private func stems(_ folder: URL, _ kind: String, extensions: Set<String>, required: Bool) throws(DatasetError) -> [String: URL]? {
        let directory = folder.appendingPathComponent(kind)
        guard DatasetListing.isDirectory(directory) else {
            guard required else { return nil }
            throw .missingDirectory(path: directory.path, expected: "the \(kind) files of the samples in \(folder.lastPathComponent)")
        }
        var files = [String: URL]()
        for name in try DatasetListing.files(in: directory) {
            let file = directory.appendingPathComponent(name)
            guard extensions.contains(file.pathExtension.lowercased()) else { continue }
            files[file.deletingPathExtension().lastPathComponent] = file
        }
        return files
    }

    /// Throws for the first file of `files` (by stem) that `partners` lacks.
    private func requirePairs(_ files: [String: URL], _ partners: [String: URL],
                              partnerFolder: String, partnerExtension: String) throws(DatasetError) {
        if let id = files.keys.sorted().first(where: { partners[$0] == nil }) {
            let file = files[id]!
            let sibling = file.deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent(partnerFolder).appendingPathComponent("\(id).\(partnerExtension)")
            throw .unpairedFile(file: file.path, missing: sibling.path)
        }
    }
}

/// Directory listing helpers that skip hidden entries and report failures as `DatasetError`.
enum DatasetListing {
    static func isDirectory(_ url: URL) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    /// Visible entries of `directory`, sorted.
    static func entries(of directory: URL) throws(DatasetError) -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { !$0.hasPrefix(".") }.sorted()
        } catch {
            throw .unreadableDirectory(path: directory.path, reason: (error as NSError).localizedDescription)
        }
    }

    /// Visible subdirectories of `directory`, sorted.
    static func subdirectories(of directory: URL) throws(DatasetError) -> [String] {
        try entries(of: directory).filter { isDirectory(directory.appendingPathComponent($0)) }
    }

    /// Visible non-directory entries of `directory`, sorted.
    static func files(in directory: URL) throws(DatasetError) -> [String] {
        try entries(of: directory).filter { !isDirectory(directory.appendingPathComponent($0)) }
    }
}
