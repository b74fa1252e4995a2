import Dispatch
import Foundation

/// Number of worker threads the kernels split their work over (all cores).
public let cpuCount = max(1, ProcessInfo.processInfo.activeProcessorCount)

/// Runs `body` over contiguous chunks of `0..<count`, in parallel on all cores when the
/// work is large enough to pay for the hand-off (at least `minimumChunk` items a chunk).
///
/// This is the engine's only source of parallelism: GEMMs run single-threaded inside
/// the chunks (see `gemm`), so no thread pool spins while another one works.
public func parallelChunks(_ count: Int, minimumChunk: Int = 1024, _ body: (Range<Int>) -> Void) {
    parallelWorkers(count, minimumChunk: minimumChunk) { _, range in body(range) }
}

/// Like `parallelChunks`, also passing each chunk its worker slot in `0..<cpuCount`, so a
/// chunk can use a scratch buffer of its own.
///
/// Called from inside a chunk (a kernel used by a parallel caller), it runs inline on the
/// calling thread with worker slot 0 — callers that nest must pass their own slot down.
public func parallelWorkers(_ count: Int, minimumChunk: Int = 1, _ body: (_ worker: Int, _ range: Range<Int>) -> Void) {
    let chunks = min(cpuCount, count / max(1, minimumChunk))
    if chunks <= 1 || pthread_getspecific(insideWorkerKey) != nil {
        if count > 0 { body(0, 0..<count) }
        return
    }
    // concurrentPerform returns only when every chunk is done and the chunks are disjoint,
    // so handing the non-escaping, non-Sendable body to its workers is safe.
    withoutActuallyEscaping(body) { body in
        let work = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            pthread_setspecific(insideWorkerKey, UnsafeRawPointer(bitPattern: 1))
            defer { pthread_setspecific(insideWorkerKey, nil) }
            work.value(c, (count * c / chunks)..<(count * (c + 1) / chunks))
        }
    }
}

/// Thread-specific flag: set while a thread runs a chunk of `parallelWorkers`.
private let insideWorkerKey: pthread_key_t = {
    var key = pthread_key_t()
    precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create failed")
    return key
}()

/// Carries a value into a `@Sendable` closure whose safety the caller has established.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
