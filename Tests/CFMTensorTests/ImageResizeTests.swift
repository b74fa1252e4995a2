import CFMTensor
import CFMTestSupport
import Testing

/// Square padding, Pillow bicubic and PyTorch nearest resizing against
/// `Tests/Fixtures/image_resize.safetensors` (`tools/reference/make_image_fixtures.py`).
@Suite struct ImageResizeTests {
    let fx: SafeTensors
    init() throws { fx = try Fixtures.open("image_resize.safetensors") }

    /// `test_pattern` of the fixture script: a horizontal ramp, a hard-edged checkerboard, a hash.
    static func testPattern(height: Int, width: Int) -> [UInt8] {
        var out = [UInt8]()
        for y in 0..<height {
            for x in 0..<width {
                out.append(UInt8(x * 255 / max(width - 1, 1)))
                out.append((x / 7 + y / 5) % 2 == 0 ? 255 : 0)
                out.append(UInt8(((x * 37 + y * 91) ^ (x * y)) & 255))
            }
        }
        return out
    }

    @Test(arguments: [
        ("up", 90, 150, false, 224, 224), ("down", 300, 400, false, 224, 224),
        ("pad_wide", 45, 60, true, 56, 56), ("pad_tall", 61, 40, true, 64, 64),
    ])
    func bicubicMatchesPillow(name: String, height: Int, width: Int, pad: Bool, outHeight: Int, outWidth: Int) throws {
        var pixels = Self.testPattern(height: height, width: width)
        var side = (height, width)
        if pad {
            pixels = padToSquare(pixels, height: height, width: width, channels: 3, .replicateEdge)
            side = (max(height, width), max(height, width))
        }
        let resized = bicubicResize(pixels, height: side.0, width: side.1, channels: 3, outHeight: outHeight, outWidth: outWidth)
        let expected = try fx.tensor("bicubic.\(name)", shape: [outHeight, outWidth, 3]).scalars.map { UInt8($0) }
        let differences = zip(resized, expected).map { abs(Int($0) - Int($1)) }
        let exact = differences.filter { $0 == 0 }.count
        #expect(differences.max() ?? 0 <= 1, "\(name): max difference \(differences.max() ?? 0)")
        #expect(exact == expected.count, "\(name): \(exact) of \(expected.count) bytes match Pillow exactly")
    }

    /// PyTorch computes the index in float32; for 480, 608 and 62 → 224 that differs from the exact
    /// ⌊dst · in / out⌋ at some indices, and cfm follows PyTorch.
    @Test func nearestIndicesMatchPyTorch() throws {
        for (inSize, outSize) in [(800, 224), (600, 224), (400, 224), (1544, 224), (1000, 224), (512, 224),
                                  (300, 224), (224, 224), (112, 224), (53, 224), (37, 224), (7, 3),
                                  (480, 224), (608, 224), (62, 224)] {
            let expected = try fx.tensor("nearest.\(inSize)_\(outSize)").scalars.map { Int($0) }
            #expect(nearestSourceIndices(inSize: inSize, outSize: outSize) == expected, "\(inSize) → \(outSize)")
        }
    }

    @Test func nearestMapMatchesPyTorch() throws {
        let input = try fx.tensor("nearest.map.input", shape: [13, 9, 3])
        let resized = nearestResize(input, outHeight: 20, outWidth: 6)
        #expect(resized == (try fx.tensor("nearest.map.output", shape: [20, 6, 3])))
    }

    @Test func constantPaddingCentresTheImage() {
        // 1×2 image with 2 channels → 2×2: one zero row added at the bottom (top = (2 − 1)/2 = 0).
        let wide = padToSquare([1, 2, 3, 4] as [Float], height: 1, width: 2, channels: 2, .constant(0))
        #expect(wide == [1, 2, 3, 4, 0, 0, 0, 0])
        // 3×1 → 3×3: one column left, one right.
        let tall = padToSquare([1, 2, 3] as [Float], height: 3, width: 1, channels: 1, .constant(0))
        #expect(tall == [0, 1, 0, 0, 2, 0, 0, 3, 0])
    }

    @Test func edgePaddingReplicatesBorderPixels() {
        // 2×4 → 4×4: top = 1 row, bottom = 1 row, copies of the nearest row.
        let image: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]
        let padded = padToSquare(image, height: 2, width: 4, channels: 1, .replicateEdge)
        #expect(padded == [1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 7, 8, 5, 6, 7, 8])
    }

    @Test func bicubicIdentityKeepsPixels() {
        let pixels = Self.testPattern(height: 9, width: 11)
        #expect(bicubicResize(pixels, height: 9, width: 11, channels: 3, outHeight: 9, outWidth: 11) == pixels)
    }

    /// Padding folded into the taps reproduces padding then resizing byte for byte: wide, tall,
    /// square, one-pixel-thin, up- and downscaled images, 1 to 4 channels.
    @Test(arguments: [(45, 60, 56), (61, 40, 64), (30, 30, 17), (1, 9, 5), (9, 1, 12), (7, 300, 224), (250, 180, 224), (3, 5, 224)],
          [1, 3, 4])
    func paddedSquareBicubicEqualsPaddingThenResizing(shape: (Int, Int, Int), channels: Int) {
        let (height, width, size) = shape
        let pixels = Self.testPattern(height: height * channels, width: width).prefix(height * width * channels).map { $0 }
        let side = max(height, width)
        let padded = padToSquare(pixels, height: height, width: width, channels: channels, .replicateEdge)
        let expected = bicubicResize(padded, height: side, width: side, channels: channels, outHeight: size, outWidth: size)
        var scratch: [UInt8] = []
        for _ in 0..<2 {  // the second call reuses the scratch
            let fused = pixels.withUnsafeBufferPointer {
                paddedSquareBicubicResize($0, height: height, width: width, channels: channels, outSize: size, scratch: &scratch)
            }
            #expect(fused == expected, "\(height)×\(width)×\(channels) → \(size)")
        }
    }

    /// Selecting pixels straight from the source equals zero padding then nearest resizing.
    @Test(arguments: [(45, 60, 56), (61, 40, 64), (30, 30, 17), (1, 9, 5), (9, 1, 12), (7, 300, 224), (250, 180, 224)])
    func paddedSquareNearestEqualsPaddingThenResizing(shape: (Int, Int, Int)) {
        let (height, width, size) = shape
        let values = (0..<(height * width * 3)).map { Float($0 % 977) - 400.5 }
        let side = max(height, width)
        let padded = Tensor(shape: [side, side, 3], scalars: padToSquare(values, height: height, width: width, channels: 3, .constant(0)))
        let fused = values.withUnsafeBufferPointer { paddedSquareNearestResize($0, height: height, width: width, channels: 3, outSize: size) }
        #expect(fused == nearestResize(padded, outHeight: size, outWidth: size), "\(height)×\(width) → \(size)")
    }
}
