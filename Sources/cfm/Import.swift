import ArgumentParser
import CFMImport
import Foundation

/// `cfm import`: the authors' release checkpoints → extractor weights and a model bundle.
struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import the authors' release checkpoints → extractors/ and a model bundle, without Python.",
        discussion: """
            Reads PyTorch zip checkpoints (torch.save ≥ 1.6) with a restricted unpickler that accepts only \
            state-dict contents (tensors, containers, numbers, strings, argparse namespaces) and refuses any \
            other global; the ViT may also be timm's .safetensors. Writes OUT/extractors/{vit,pointmae}.safetensors \
            and, with both mappers, the bundle OUT/model (tier from the mapper widths, provenance with SHA-256). \
            OUT must not exist; it appears complete or not at all.
            """)

    @Option(help: "DINO ViT-B/8: dino_vitbase8_pretrain.pth, a full DINO checkpoint, or timm's vit_base_patch8_224.dino (.pth or .safetensors).")
    var vit: String
    @Option(help: "Point-MAE's pretrain.pth.") var pointmae: String
    @Option(name: .customLong("mapper-2d-to-3d"), help: "The CFM authors' CFM_2Dto3D_<class>_250ep_4bs.pth.") var rgbToXYZ: String?
    @Option(name: .customLong("mapper-3d-to-2d"), help: "The CFM authors' CFM_3Dto2D_<class>_250ep_4bs.pth.") var xyzToRGB: String?
    @Option(help: "Class recorded in the bundle (default: from the mapper file names).") var className: String?
    @Option(help: "Output directory (must not exist): extractors/ and, with mappers, model/.") var out: String

    func validate() throws {
        guard (rgbToXYZ == nil) == (xyzToRGB == nil) else {
            throw ValidationError("give both --mapper-2d-to-3d and --mapper-3d-to-2d, or neither")
        }
    }

    func run() throws {
        let url = { (path: String) in URL(fileURLWithPath: path) }
        let result = try CheckpointImport.run(.init(
            vit: url(vit), pointMAE: url(pointmae), rgbToXYZ: rgbToXYZ.map(url), xyzToRGB: xyzToRGB.map(url),
            out: url(out), className: className, toolVersion: CFM.version))
        for file in result.files {
            print("\(file.output.path): \(file.role) from \(file.source.lastPathComponent) (sha256 \(file.sha256)), "
                  + "\(file.kept) tensors kept, \(file.dropped.count) dropped")
        }
        if let bundle = result.bundle, let tier = result.tier {
            print("\(bundle.path): bundle for tier \(tier.rawValue), not calibrated (run cfm calibrate, or set decision.threshold)")
        }
        print(String(format: "imported in %.1f s", result.seconds))
    }
}
