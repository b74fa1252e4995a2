import CFMGeometry
import CFMTensor
import Testing

@Suite struct OrganizedCloudTests {
    /// 2×3 pixels: a full point, a partial zero (background), an empty pixel, three points.
    let cloud = try! OrganizedCloud(height: 2, width: 3, coordinates: [
        1, 2, 3, /**/ 0, 5, 6, /**/ 0, 0, 0,
        7, 8, 9, /**/ 4, 4, 4, /**/ -1, -2, 0.5,
    ])

    @Test func foregroundNeedsAllThreeCoordinates() {
        #expect(cloud.isForeground(pixel: 0))
        #expect(!cloud.isForeground(pixel: 1))
        #expect(!cloud.isForeground(pixel: 2))
        #expect(cloud.foregroundCount == 4)
    }

    @Test func foregroundPointsKeepRowMajorOrderAndPixels() {
        let foreground = ForegroundPoints(of: cloud)
        #expect(foreground.count == 4)
        #expect(foreground.pixelIndices == [0, 3, 4, 5])
        #expect(foreground.points.shape == [4, 3])
        #expect(foreground.points.scalars == [1, 2, 3, 7, 8, 9, 4, 4, 4, -1, -2, 0.5])
    }

    @Test func scatterPutsRowsBackAtTheirPixels() throws {
        let foreground = ForegroundPoints(of: cloud)
        let values = Tensor(shape: [4, 2], scalars: [1, 2, 3, 4, 5, 6, 7, 8])
        let grid = try foreground.scatter(values)
        #expect(grid.shape == [2, 3, 2])
        #expect(grid.scalars == [1, 2, 0, 0, 0, 0, 3, 4, 5, 6, 7, 8])
        // Scattering the points themselves restores the foreground of the cloud.
        let restored = try foreground.scatter(foreground.points)
        #expect(restored.scalars == [1, 2, 3, 0, 0, 0, 0, 0, 0, 7, 8, 9, 4, 4, 4, -1, -2, 0.5])
        #expect(throws: GeometryError.self) { try foreground.scatter(Tensor(shape: [3, 2])) }
    }

    @Test func shapesAreChecked() throws {
        #expect(throws: GeometryError.shapeMismatch(argument: "organized cloud", expected: "[height, width, 3]",
                                                    found: [4, 4])) {
            try OrganizedCloud(Tensor(shape: [4, 4]))
        }
        #expect(throws: GeometryError.self) { try OrganizedCloud(height: 2, width: 2, coordinates: [1, 2, 3]) }
        #expect(try OrganizedCloud(Tensor(shape: [2, 3, 3])).pixelCount == 6)
    }
}
