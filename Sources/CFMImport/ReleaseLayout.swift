import CFMModels
import CFMTensor
import Foundation

/// The architectures the release files must fit: the official sizes, or smaller ones of the
/// same structure and key names (tests).
public struct ReleaseArchitecture: Sendable {
    public var vit: VisionTransformer.Config
    public var pointMAE: PointMAE.Config

    public init(vit: VisionTransformer.Config, pointMAE: PointMAE.Config) { (self.vit, self.pointMAE) = (vit, pointMAE) }

    /// DINO ViT-B/8 and the released Point-MAE encoder, 12 blocks each.
    public static let official = ReleaseArchitecture(vit: .dinoViTB8, pointMAE: .pointMAE)

    /// The widths of the 3D feature: one block's output (tier tiny) or three concatenated.
    var xyzDims: [Int] { [pointMAE.dim, 3 * pointMAE.dim] }

    /// The tier of mappers over `xyzDim`-wide 3D features: the deepest tier whose Point-MAE
    /// feature has that width and whose blocks the extractors have (the released 1152-wide
    /// mappers read blocks 3, 7 and 11: `full`).
    func tier(xyzDim: Int) -> Tier? {
        Tier.allCases.last { tier in
            tier.pointFeatureBlocks.count * pointMAE.dim == xyzDim && tier.blocks <= min(vit.depth, pointMAE.depth)
        }
    }
}

/// The three kinds of release file and the parameters each must provide.
enum ReleaseKind: String {
    /// DINO's `dino_vitbase8_pretrain.pth` (150 keys; or a full DINO checkpoint, whose
    /// `teacher` is used) or timm's `vit_base_patch8_224.dino` state dict (`.pth` / `.safetensors`).
    case vit
    /// Point-MAE's `pretrain.pth`: `base_model` → `module.MAE_encoder.*` (decoder, mask token dropped).
    case pointMAE = "pointmae"
    /// A CFM feature mapper (`CFM_2Dto3D_<class>_…pth`, `CFM_3Dto2D_…`): `input`, `projection`, `output`.
    case mapper

    /// The expected parameters (name, shape) in `state`, for `architecture`. A mapper's
    /// widths are read from its `input` and `output` layers and must be one of the pairs
    /// the extractors produce (2D 768 ↔ 3D 384 or 1152 at the official sizes).
    func expectedParameters(in state: StateDict, architecture: ReleaseArchitecture) throws(ImportError) -> [(String, [Int])] {
        switch self {
        case .vit: return architecture.vit.parameterShapes
        case .pointMAE: return architecture.pointMAE.parameterShapes
        case .mapper:
            for name in ["input.weight", "output.weight"] where state.shape(name)?.count != 2 {
                throw .wrongArchitecture(file: state.file, reason: "missing or non-matrix key \(name)")
            }
            let dIn = state.shape("input.weight")![1], dOut = state.shape("output.weight")![0]
            let rgb = architecture.vit.dim
            let allowed = architecture.xyzDims.flatMap { [(rgb, $0), ($0, rgb)] }.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
            guard allowed.contains(where: { $0 == (dIn, dOut) }) else {
                throw .wrongArchitecture(file: state.file, reason: "mapper \(dIn)->\(dOut) is not one of "
                                         + allowed.map { "\($0.0)->\($0.1)" }.joined(separator: ", "))
            }
            return FeatureMapper.parameterShapes(inFeatures: dIn, outFeatures: dOut)
        }
    }
}

/// One release file converted: its tensors (in the architecture's order) and what was left out.
struct ConvertedRelease {
    var kind: ReleaseKind
    var source: URL
    var tensors: [(String, Tensor)]
    var dropped: [String]

    /// Reads `source` and keeps exactly the parameters `kind` needs, as Float32.
    init(_ kind: ReleaseKind, source: URL, architecture: ReleaseArchitecture) throws(ImportError) {
        let state = try StateDict.read(source)
        (self.kind, self.source) = (kind, source)
        (tensors, dropped) = try state.select(try kind.expectedParameters(in: state, architecture: architecture))
    }

    /// `(in, out)` widths of a mapper.
    var mapperWidths: (in: Int, out: Int) {
        let shapes = Dictionary(uniqueKeysWithValues: tensors.map { ($0.0, $0.1.shape) })
        return (shapes["input.weight"]![1], shapes["output.weight"]![0])
    }
}
