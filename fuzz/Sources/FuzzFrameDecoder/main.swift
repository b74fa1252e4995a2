import CFMService

/// libFuzzer's entry point: one protocol-v1 input message per input (see `FuzzHarness.frameDecoderViolation`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrameDecoder(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let violation = FuzzHarness.frameDecoderViolation(bytes) { fatalError(violation) }
    return 0
}
