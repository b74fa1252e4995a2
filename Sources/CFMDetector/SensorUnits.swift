import CFMData

extension XYZFormat {
    /// The unit of the cloud this layout converts to: 16-bit depth counts are scaled to
    /// metres by the depth scale; the float layouts keep the unit they were `declared` in.
    public func cloudUnit(declared: LengthUnit) -> LengthUnit { self == .depthU16 ? .m : declared }
}
