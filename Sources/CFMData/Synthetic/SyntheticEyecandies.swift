import Foundation

extension SyntheticDataset {
    /// Writes `cfm synth` parts in the Eyecandies layout as the official preprocessing leaves it
    /// (`DatasetLayout.eyecandies`), for tests of that layout: per class
    /// `train/good/{rgb,xyz}/NNN` (`trainCount` samples), `test/good/{rgb,xyz,gt}/NNN` and
    /// `test/bad/{rgb,xyz,gt}/NNN` (`testCountPerType` each; the bad parts cycle through the
    /// defect types colour, shape, combined, crossmodal). Masks are 3-channel PNGs with 0 / 255 in
    /// every channel, all zero for good parts; no validation split. `validationCount` is unused.
    /// Everything derives from the seed. Returns the number of samples written.
    @discardableResult
    public static func generateEyecandies(_ options: Options, to directory: URL) throws(ImageFileError) -> Int {
        let defects = SyntheticDefectType.allCases.filter { $0 != .good }
        var written = 0
        for partClass in options.classes {
            let folders: [(split: DatasetSplit, folder: String, count: Int)] = [
                (.train, MVTec3DClass.nominal, options.trainCount),
                (.test, MVTec3DClass.nominal, options.testCountPerType),
                (.test, DatasetLayout.eyecandiesDefect, options.testCountPerType),
            ]
            for (split, folder, count) in folders {
                let base = directory.appendingPathComponent("\(partClass.rawValue)/\(split.rawValue)/\(folder)")
                let kinds = split == .test ? ["rgb", "xyz", "gt"] : ["rgb", "xyz"]
                for kind in kinds { try createDirectory(base.appendingPathComponent(kind)) }
                for index in 0..<count {
                    let type = folder == DatasetLayout.eyecandiesDefect ? defects[index % defects.count] : .good
                    let seed = mixSeed(options.seed, nameSeed("eyecandies"), nameSeed(partClass.rawValue), nameSeed(split.rawValue),
                                       nameSeed(folder), UInt64(index))
                    let sample = render(partClass, type, seed: seed, size: options.size)
                    let stem = String(format: "%03d", index)
                    try PNGFile.write(sample.rgb, to: base.appendingPathComponent("rgb/\(stem).png"), compression: .fast)
                    try TIFFFile.write(sample.cloud, to: base.appendingPathComponent("xyz/\(stem).tiff"))
                    if split == .test {
                        let mask = RGBImage(height: options.size, width: options.size,
                                            bytes: sample.mask.bytes.flatMap { [$0, $0, $0] })
                        try PNGFile.write(mask, to: base.appendingPathComponent("gt/\(stem).png"))
                    }
                    written += 1
                }
            }
        }
        return written
    }
}
