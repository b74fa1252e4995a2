import CFMDetector
import CFMModels
import CFMTensor
import Crypto
import Foundation

/// `cfm import` as a library job: the authors' release files → `extractors/` (the files every
/// command's `--extractors` takes) and, with both mappers, `model/` — a bundle whose manifest
/// records the tier the shapes imply, the BatchNorm mode of the authors' code (`frame`) and
/// the provenance of every file (name and SHA-256). The output directory appears complete or
/// not at all: everything is written into a hidden sibling first and renamed at the end.
public enum CheckpointImport {
    public struct Options: Sendable {
        /// DINO ViT-B/8: `dino_vitbase8_pretrain.pth`, a full DINO checkpoint, or timm's state dict (`.pth` / `.safetensors`).
        public var vit: URL
        /// Point-MAE's `pretrain.pth`.
        public var pointMAE: URL
        /// The CFM mappers (`CFM_2Dto3D_<class>_250ep_4bs.pth`, `CFM_3Dto2D_…`): both or neither.
        public var rgbToXYZ: URL?, xyzToRGB: URL?
        /// The output directory; must not exist yet (or be empty).
        public var out: URL
        /// The bundle's class; by default read from the mapper file names (`CFM_2Dto3D_<class>_…`).
        public var className: String?
        /// The version of cfm doing the import (recorded in the manifest and its provenance).
        public var toolVersion: String
        public var architecture: ReleaseArchitecture

        public init(vit: URL, pointMAE: URL, rgbToXYZ: URL? = nil, xyzToRGB: URL? = nil, out: URL, className: String? = nil,
                    toolVersion: String, architecture: ReleaseArchitecture = .official) {
            (self.vit, self.pointMAE, self.rgbToXYZ, self.xyzToRGB) = (vit, pointMAE, rgbToXYZ, xyzToRGB)
            (self.out, self.className, self.toolVersion, self.architecture) = (out, className, toolVersion, architecture)
        }
    }

    /// One release file as imported.
    public struct ImportedFile: Sendable {
        /// `vit`, `pointmae`, `mapper_2d_to_3d` or `mapper_3d_to_2d`.
        public var role: String
        public var source: URL, output: URL
        public var sha256: String
        public var kept: Int
        /// Entries of the release file that are not parameters of the architecture, sorted.
        public var dropped: [String]
    }

    public struct Result: Sendable {
        public var files: [ImportedFile]
        /// The bundle written (`out/model`), with its tier, when mappers were given.
        public var bundle: URL?, tier: Tier?
        public var seconds: Double
    }

    public static let extractorsDirectory = "extractors", modelDirectory = "model"

    /// Reads, checks and converts every file, then writes `options.out` atomically.
    public static func run(_ options: Options) throws -> Result {
        let started = Date()
        guard (options.rgbToXYZ == nil) == (options.xyzToRGB == nil) else {
            throw ImportError.inconsistent(reason: "give both mappers (--mapper-2d-to-3d and --mapper-3d-to-2d) or neither")
        }
        let out = options.out.standardizedFileURL, fm = FileManager.default
        if let existing = try? fm.contentsOfDirectory(atPath: out.path), !existing.isEmpty {
            throw ImportError.unwritable(path: out.path, reason: "exists and is not empty (choose a new --out)")
        } else if fm.fileExists(atPath: out.path), (try? fm.contentsOfDirectory(atPath: out.path)) == nil {
            throw ImportError.unwritable(path: out.path, reason: "exists and is not a directory")
        }

        // Everything is read and checked before anything is written.
        let arch = options.architecture
        let vit = try ConvertedRelease(.vit, source: options.vit, architecture: arch)
        let pointMAE = try ConvertedRelease(.pointMAE, source: options.pointMAE, architecture: arch)
        var mappers: (rgbToXYZ: ConvertedRelease, xyzToRGB: ConvertedRelease, tier: Tier)?
        if let a = options.rgbToXYZ, let b = options.xyzToRGB {
            let forward = try ConvertedRelease(.mapper, source: a, architecture: arch)
            let backward = try ConvertedRelease(.mapper, source: b, architecture: arch)
            let rgb = arch.vit.dim, (fIn, fOut) = forward.mapperWidths, (bIn, bOut) = backward.mapperWidths
            guard fIn == rgb else { throw ImportError.inconsistent(reason: "\(a.path): a \(fIn)->\(fOut) mapper is 3D→2D, not 2D→3D (swapped?)") }
            guard bOut == rgb else { throw ImportError.inconsistent(reason: "\(b.path): a \(bIn)->\(bOut) mapper is 2D→3D, not 3D→2D (swapped?)") }
            guard fOut == bIn else {
                throw ImportError.inconsistent(reason: "the mappers disagree on the 3D feature width: \(fOut) (\(a.lastPathComponent)) vs \(bIn) (\(b.lastPathComponent))")
            }
            guard let tier = arch.tier(xyzDim: fOut) else {
                throw ImportError.inconsistent(reason: "no tier of these extractors produces \(fOut)-d 3D features")
            }
            mappers = (forward, backward, tier)
        }
        let releases = [("vit", vit), ("pointmae", pointMAE)]
            + (mappers.map { [("mapper_2d_to_3d", $0.rgbToXYZ), ("mapper_3d_to_2d", $0.xyzToRGB)] } ?? [])
        let digests = try Dictionary(uniqueKeysWithValues: releases.map { ($0.0, try sha256(of: $0.1.source)) })

        let staging = out.deletingLastPathComponent().appendingPathComponent(".\(out.lastPathComponent).import-\(getpid())")
        try? fm.removeItem(at: staging)
        do {
            let extractors = staging.appendingPathComponent(extractorsDirectory)
            try fm.createDirectory(at: extractors, withIntermediateDirectories: true)
            for (release, name) in [(vit, ExtractorFile.vit), (pointMAE, ExtractorFile.pointMAE)] {
                try SafeTensors.write(Dictionary(uniqueKeysWithValues: release.tensors),
                                      metadata: ["format": "cfm", "kind": release.kind.rawValue, "source": release.source.lastPathComponent],
                                      to: extractors.appendingPathComponent(name))
            }
            if let mappers {
                let manifest = try bundleManifest(options, mappers: mappers, extractors: extractors, digests: digests)
                try ModelBundle.write(manifest, rgbToXYZ: featureMapper(mappers.rgbToXYZ), xyzToRGB: featureMapper(mappers.xyzToRGB),
                                      to: staging.appendingPathComponent(modelDirectory))
            }
            if fm.fileExists(atPath: out.path) { try fm.removeItem(at: out) }   // an empty directory, checked above
            try fm.moveItem(at: staging, to: out)
        } catch {
            try? fm.removeItem(at: staging)
            throw ImportError.unwritable(path: out.path, reason: "\(error)")
        }

        let extractors = out.appendingPathComponent(extractorsDirectory), model = out.appendingPathComponent(modelDirectory)
        let outputs = ["vit": extractors.appendingPathComponent(ExtractorFile.vit),
                       "pointmae": extractors.appendingPathComponent(ExtractorFile.pointMAE),
                       "mapper_2d_to_3d": model.appendingPathComponent(BundleFile.rgbToXYZ),
                       "mapper_3d_to_2d": model.appendingPathComponent(BundleFile.xyzToRGB)]
        let files = releases.map { role, release in
            ImportedFile(role: role, source: release.source, output: outputs[role]!, sha256: digests[role]!,
                         kept: release.tensors.count, dropped: release.dropped)
        }
        return Result(files: files, bundle: mappers == nil ? nil : model, tier: mappers?.tier,
                      seconds: Date().timeIntervalSince(started))
    }

    /// The manifest of the imported bundle: the tier the mapper widths imply, the authors'
    /// BatchNorm mode and preprocessing (cfm's defaults are the official ones), the extractor checksums and the provenance of all four files. The
    /// release files do not record how the mappers were trained beyond what their names
    /// say (`…_250ep_4bs` → 250 epochs, batches of 4); every other training field is 0.
    private static func bundleManifest(_ options: Options, mappers: (rgbToXYZ: ConvertedRelease, xyzToRGB: ConvertedRelease, tier: Tier),
                                       extractors: URL, digests: [String: String]) throws -> ModelManifest {
        let names = [mappers.rgbToXYZ.source.lastPathComponent, mappers.xyzToRGB.source.lastPathComponent]
        let parsed = names.compactMap(MapperFileName.init)
        let className = try options.className ?? {
            guard parsed.count == 2 else { return "unknown" }
            guard parsed[0].className == parsed[1].className else {
                throw ImportError.inconsistent(reason: "the mappers are of different classes: \(parsed[0].className) (\(names[0])) and \(parsed[1].className) (\(names[1])); pass --class-name to override")
            }
            return parsed[0].className
        }()
        let extractorSums = try ModelBundle.extractorChecksums(extractors)
        let now = ISO8601DateFormatter().string(from: Date())
        let (rgb, xyz) = mappers.rgbToXYZ.mapperWidths
        var manifest = ModelManifest(
            tier: mappers.tier, className: className, rgbDim: rgb, xyzDim: xyz, hiddenDim: FeatureMapper.hiddenWidth(rgb, xyz),
            batchnorm: .frame, preprocessing: PreprocessOptions(), extractors: extractorSums, mappers: [],
            training: .init(samples: 0, shots: nil, epochs: parsed.first?.epochs ?? 0, batchSize: parsed.first?.batchSize ?? 0,
                            learningRate: 0, pixelsPerSample: 0, seed: 0, finalLoss: 0, finalCosine3D: 0, finalCosine2D: 0, seconds: 0),
            createdAt: now, toolVersion: options.toolVersion)
        let roles: [(String, URL)] = [("vit", options.vit), ("pointmae", options.pointMAE),
                                      ("mapper_2d_to_3d", mappers.rgbToXYZ.source), ("mapper_3d_to_2d", mappers.xyzToRGB.source)]
        manifest.provenance = .init(sources: roles.map { .init(role: $0.0, file: $0.1.lastPathComponent, sha256: digests[$0.0]!) },
                                    tool: "cfm import \(options.toolVersion)", importedAt: now)
        return manifest
    }

    private static func featureMapper(_ release: ConvertedRelease) -> FeatureMapper {
        let (dIn, dOut) = release.mapperWidths
        return FeatureMapper(inFeatures: dIn, outFeatures: dOut, parameters: release.tensors.map { $0.1.scalars })
    }

    /// Lowercase hex SHA-256 of the file at `url`.
    static func sha256(of url: URL) throws(ImportError) -> String {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw .unreadable(file: url.path, reason: (error as NSError).localizedDescription)
        }
        return SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }
}

/// What the CFM authors' mapper file names say: `CFM_2Dto3D_<class>_<epochs>ep_<batch>bs.pth`.
struct MapperFileName {
    var className: String, epochs: Int, batchSize: Int

    init?(_ name: String) {
        let stem = name.split(separator: ".").first.map(String.init) ?? name
        var parts = stem.split(separator: "_").map(String.init)
        guard parts.count >= 5, parts[0] == "CFM", ["2Dto3D", "3Dto2D"].contains(parts[1]),
              parts[parts.count - 2].hasSuffix("ep"), parts[parts.count - 1].hasSuffix("bs"),
              let epochs = Int(parts[parts.count - 2].dropLast(2)), let batch = Int(parts[parts.count - 1].dropLast(2))
        else { return nil }
        parts.removeLast(2)
        (className, self.epochs, batchSize) = (parts.dropFirst(2).joined(separator: "_"), epochs, batch)
    }
}
