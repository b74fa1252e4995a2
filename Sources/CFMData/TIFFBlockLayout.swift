/// How a TIFF image is cut into blocks (strips or tiles, one sample plane or
/// all samples interleaved), and how one block maps to the interleaved [height, width, samples]
/// array. Reading and writing share it, so every layout is handled by one code path.
struct TIFFBlockLayout {
    let height: Int, width: Int, samples: Int
    /// Bytes of one sample: 1 (uint8), 2 (uint16) or 4 (float32).
    let bytesPerSample: Int
    /// Tiles when true, strips (blocks as wide as the image) otherwise.
    let tiled: Bool
    /// Block size in pixels; strips are `width` wide and `rowsPerStrip` high.
    let blockWidth: Int, blockHeight: Int
    /// Samples stored in their own planes (PLANARCONFIG_SEPARATE) instead of interleaved.
    let separatePlanes: Bool

    /// One block: where it lies in the image and which sample plane it holds.
    struct Block {
        /// libtiff's strip or tile number.
        let index: Int
        let x: Int, y: Int
        /// The part inside the image (edge tiles and the last strip are cut).
        let validWidth: Int, validHeight: Int
        /// First sample held (the plane when planes are separate, else 0).
        let plane: Int
    }

    /// Samples stored per pixel of a block.
    var samplesPerBlockPixel: Int { separatePlanes ? 1 : samples }

    /// Bytes of a full block.
    var blockBytes: Int { blockWidth * blockHeight * samplesPerBlockPixel * bytesPerSample }

    /// Every block in libtiff's numbering order: plane, then rows of blocks, then columns.
    var blocks: [Block] {
        let across = (width + blockWidth - 1) / blockWidth, down = (height + blockHeight - 1) / blockHeight
        var result = [Block]()
        for plane in 0..<(separatePlanes ? samples : 1) {
            for by in 0..<down {
                for bx in 0..<across {
                    let x = bx * blockWidth, y = by * blockHeight
                    result.append(Block(index: result.count, x: x, y: y, validWidth: min(blockWidth, width - x),
                                        validHeight: min(blockHeight, height - y), plane: plane))
                }
            }
        }
        return result
    }

    /// Bytes a block must decode to: whole tiles, but only the valid rows of a strip.
    func decodedBytes(of block: Block) -> Int {
        (tiled ? blockHeight : block.validHeight) * blockWidth * samplesPerBlockPixel * bytesPerSample
    }

    /// Copies a decoded block into the interleaved image (both raw samples of `bytesPerSample`).
    func scatter(_ block: Block, from buffer: UnsafeRawPointer, into image: UnsafeMutableRawPointer) {
        let n = bytesPerSample
        forEachRun(of: block) { blockOffset, imageOffset in
            if separatePlanes {
                for i in 0..<block.validWidth { (image + n * (imageOffset + i * samples)).copyMemory(from: buffer + n * (blockOffset + i), byteCount: n) }
            } else {
                (image + n * imageOffset).copyMemory(from: buffer + n * blockOffset, byteCount: n * block.validWidth * samples)
            }
        }
    }

    /// Copies a block's part of the interleaved image into `buffer` (the rest stays as it is).
    func gather(_ block: Block, from image: UnsafeRawPointer, into buffer: UnsafeMutableRawPointer) {
        let n = bytesPerSample
        forEachRun(of: block) { blockOffset, imageOffset in
            if separatePlanes {
                for i in 0..<block.validWidth { (buffer + n * (blockOffset + i)).copyMemory(from: image + n * (imageOffset + i * samples), byteCount: n) }
            } else {
                (buffer + n * blockOffset).copyMemory(from: image + n * imageOffset, byteCount: n * block.validWidth * samples)
            }
        }
    }

    /// Calls `body` with the sample offsets of each valid row of `block` in the block buffer
    /// and in the interleaved image.
    private func forEachRun(of block: Block, _ body: (_ blockOffset: Int, _ imageOffset: Int) -> Void) {
        for row in 0..<block.validHeight {
            body(row * blockWidth * samplesPerBlockPixel, ((block.y + row) * width + block.x) * samples + block.plane)
        }
    }
}
