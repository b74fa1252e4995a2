import CFMDetector
import CFMTensor

/// How `--shots K` picks K nominal training parts.
public enum ShotSelection: String, Sendable, CaseIterable {
    /// K drawn uniformly without replacement with the run's seed: the few-shot protocol, where
    /// results are reported over several seeds. The default.
    case random
    /// The first K in sorted stem order (what `--shots` meant before the seeded draw).
    case first
}

/// The choice of a run's nominal training parts (`train/good`) from their stems, recorded in
/// the manifest as `ModelManifest.SampleSelection`.
///
/// The stems are sorted first, so the outcome depends only on the set of stems and the seed,
/// never on the order a directory lists them. One generator stream does both draws, in this
/// order: the `holdOut` parts set aside for calibration, then — with `shots` and `.random` —
/// the training parts from the rest. Drawing the held-out parts first keeps them the same for
/// every K at a given seed.
public enum SampleDraw {
    /// XORed into the run's seed so the draw does not repeat the numbers the same seed gives
    /// the mappers' initialisation ("SAMPLES" in ASCII).
    static let streamTag: UInt64 = 0x0053_414D_504C_4553

    /// The selection from `ids` (in any order): `holdOut` stems drawn for calibration, then all
    /// the others (`shots` nil) or `shots` of them by `rule`. Refuses counts the stems cannot
    /// supply, naming `source` (where the stems came from).
    public static func select(ids: [String], shots: Int?, rule: ShotSelection, holdOut: Int, seed: UInt64,
                              source: String = "the class") throws -> ModelManifest.SampleSelection {
        guard holdOut >= 0 else { throw JobError("--hold-out must be at least 0") }
        let sorted = ids.sorted()
        guard Set(sorted).count == sorted.count else { throw JobError("training sample stems are not unique") }
        let wanted = holdOut + (shots ?? 1)
        guard wanted <= sorted.count else {
            let asked = [holdOut > 0 ? "--hold-out \(holdOut)" : nil, shots.map { "--shots \($0)" }].compactMap { $0 }
            let trained = shots == nil ? " (the held-out ones and one to train on)" : ""
            throw JobError("\(asked.joined(separator: " and ")) asks for \(wanted)\(trained), but \(source) has \(sorted.count) training samples")
        }
        var generator = SeededRandom(seed: seed ^ streamTag)
        let heldOut = randomSubset(holdOut, of: sorted, using: &generator)
        let excluded = Set(heldOut)
        let remaining = sorted.filter { !excluded.contains($0) }
        let (chosen, recorded): ([String], ModelManifest.SampleSelection.Rule) = switch (shots, rule) {
        case (nil, _): (remaining, .all)
        case let (k?, .first): (Array(remaining.prefix(k)), .first)
        case let (k?, .random): (randomSubset(k, of: remaining, using: &generator), .random)
        }
        return .init(rule: recorded, seed: seed, sampleIDs: chosen, heldOutIDs: heldOut)
    }

    /// `count` of `items` drawn uniformly without replacement (the first `count` steps of a
    /// Fisher–Yates shuffle, index i + next() mod (n − i): written out rather than the standard
    /// library's `random(in:)`, whose algorithm is not promised to stay the same), sorted.
    static func randomSubset(_ count: Int, of items: [String], using generator: inout SeededRandom) -> [String] {
        var pool = items
        for i in 0..<count {
            pool.swapAt(i, i + Int(generator.next() % UInt64(pool.count - i)))
        }
        return pool.prefix(count).sorted()
    }
}
