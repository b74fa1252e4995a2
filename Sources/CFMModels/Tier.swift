/// How much of the frozen extractors runs: the first 1 / 4 / 8 / 12 transformer blocks of
/// both the DINO ViT and Point-MAE. Chosen in the config; blocks beyond it are never loaded.
public enum Tier: String, CaseIterable, Sendable, Codable {
    case tiny, small, medium, full

    /// Transformer blocks kept (of 12).
    public var blocks: Int {
        switch self {
        case .tiny: 1
        case .small: 4
        case .medium: 8
        case .full: 12
        }
    }

    /// 0-based Point-MAE blocks whose normed outputs are concatenated into the 3D feature.
    public var pointFeatureBlocks: [Int] {
        switch self {
        case .tiny: [0]
        case .small: [1, 2, 3]
        case .medium: [1, 4, 7]
        case .full: [3, 7, 11]
        }
    }
}
