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

    /// Milliseconds of `name` (0 if it did not run).
    public subscript(name: String) -> Double { stages.first { $0.name == name }?.ms ?? 0 }

    /// Sum over all stages.
    public var total: Double { stages.reduce(0) { $0 + $1.ms } }

    public static func == (a: StageTimes, b: StageTimes) -> Bool {
        a.stages.map(\.name) == b.stages.map(\.name) && a.stages.map(\.ms) == b.stages.map(\.ms)
    }
}
