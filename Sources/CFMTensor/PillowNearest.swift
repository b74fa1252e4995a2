/// Pillow's NEAREST source index for every output index of one axis, as
/// `Image.resize(size, Image.NEAREST)` (Pillow 9, whole-image box) reads it: the pixel centre
/// (dst + ½) · in/out, with the position accumulated in double precision exactly as Pillow's
/// scaling loop does — start at ½ · (in/out), add in/out per output pixel — and truncated.
///
/// Compared with PyTorch's `nearest` (`nearestSourceIndices`, ⌊dst · in/out⌋) this samples up to
/// one source pixel further along. The accumulated rounding error stays far below half a source
/// pixel, so every index is in 0..<inSize (the clamp only guards the arithmetic).
public func pillowNearestSourceIndices(inSize: Int, outSize: Int) -> [Int] {
    precondition(inSize > 0 && outSize > 0, "empty axis: \(inSize) → \(outSize)")
    let step = Double(inSize) / Double(outSize)
    var position = step * 0.5
    var indices = [Int]()
    indices.reserveCapacity(outSize)
    for _ in 0..<outSize {
        indices.append(min(Int(position), inSize - 1))
        position += step
    }
    return indices
}
