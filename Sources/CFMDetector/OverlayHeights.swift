import CFMData
import CFMGeometry
import CFMTensor

extension HeightField {
    /// Heights of a sensor cloud [H, W, 3] in `unit` above the support plane background removal
    /// found (`PreprocessedFrame.background?.plane`), for the overlay panel.
    public init(cloud: Tensor, unit: LengthUnit, plane: Plane) {
        self.init(cloud: cloud, metresPerUnit: unit.metres, planeNormal: plane.normal, planeOffset: plane.offset)
    }
}
