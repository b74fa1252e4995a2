import Dispatch

/// Wall-clock milliseconds per named pipeline stage of one frame.
public struct StageTimes: Sendable, Equatable {
    /// Stage name → milliseconds, in the order the stages ran.
    public private(set) var stages: [(name: String, ms: Double)] = []

    public init() {}

    /// Runs `body` and records its duration under `name`.
    public mutating func measure<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { stages.append((name, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)) }
        return try body()
    }

    /// Now, as a mark for `lap`.
    public static func mark() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Records the time from `mark` to now under `name` and moves `mark` to now: the steps of
    /// one call timed back to back (background removal's plane and clusters).
    public mutating func lap(_ name: String, since mark: inout UInt64) {
        let now = Self.mark()
        stages.append((name, Double(now - mark) / 1e6))
        mark = now
    }

    /// Milliseconds of `name` (0 if it did not run).
    public subscript(name: String) -> Double { stages.first { $0.name == name }?.ms ?? 0 }

    /// Sum over all stages.
    public var total: Double { stages.reduce(0) { $0 + $1.ms } }

    public static func == (a: StageTimes, b: StageTimes) -> Bool {
        a.stages.map(\.name) == b.stages.map(\.name) && a.stages.map(\.ms) == b.stages.map(\.ms)
    }
}
