import CFMService

/// libFuzzer's entry point: one config file per input (see `FuzzHarness.configParserViolation`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfigParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let violation = FuzzHarness.configParserViolation(bytes) { fatalError(violation) }
    return 0
}
