import Dispatch
import Foundation

/// Number of worker threads the element-wise kernels split their work over.
public let cpuCount = max(1, ProcessInfo.processInfo.activeProcessorCount)

/// Runs `body` over contiguous chunks of `0..<count`, in parallel on all cores when
/// the work is large enough to pay for the hand-off (`minimumChunk` items per chunk).
///
/// Used between BLAS calls only, so Dispatch workers and BLAS threads never compete.
public func parallelChunks(_ count: Int, minimumChunk: Int = 1024, _ body: (Range<Int>) -> Void) {
    let chunks = min(cpuCount, max(1, count / max(1, minimumChunk)))
    if chunks <= 1 {
        body(0..<count)
        return
    }
    // concurrentPerform returns only when every chunk is done and the chunks are disjoint,
    // so handing the non-escaping, non-Sendable body to its workers is safe.
    withoutActuallyEscaping(body) { body in
        let work = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            work.value((count * c / chunks)..<(count * (c + 1) / chunks))
        }
    }
}

/// Carries a value into a `@Sendable` closure whose safety the caller has established.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
