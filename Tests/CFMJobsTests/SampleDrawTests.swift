import CFMDetector
import CFMJobs
import Testing

/// The seeded choice of few-shot training samples and of the parts held out for calibration.
@Suite struct SampleDrawTests {
    let ids = (0..<40).map { String(format: "%03d", $0) }

    @Test func theSameSeedDrawsTheSameSamplesWhateverTheListingOrder() throws {
        let a = try SampleDraw.select(ids: ids, shots: 5, rule: .random, holdOut: 0, seed: 7)
        let b = try SampleDraw.select(ids: ids.reversed(), shots: 5, rule: .random, holdOut: 0, seed: 7)
        var shuffled = ids
        shuffled.swapAt(0, 17)
        shuffled.swapAt(3, 39)
        let c = try SampleDraw.select(ids: shuffled, shots: 5, rule: .random, holdOut: 0, seed: 7)
        #expect(a == b && a == c)
        #expect(a.rule == .random && a.seed == 7 && a.sampleIDs.count == 5 && a.heldOutIDs.isEmpty)
        #expect(a.sampleIDs == a.sampleIDs.sorted() && Set(a.sampleIDs).isSubset(of: ids))
        // Not simply the first five.
        #expect(a.sampleIDs != Array(ids.prefix(5)))
    }

    @Test func differentSeedsDrawDifferentSamples() throws {
        let draws = try (0..<8).map { try SampleDraw.select(ids: ids, shots: 5, rule: .random, holdOut: 0, seed: $0).sampleIDs }
        #expect(Set(draws).count == draws.count)
    }

    /// Every sample is about equally likely to be drawn: over 2000 seeds each of the 40 is
    /// drawn 250 times in expectation (K/N = 1/8), with a standard deviation of about 15.
    @Test func theDrawIsUniform() throws {
        var counts = [String: Int]()
        for seed in 0..<2000 {
            for id in try SampleDraw.select(ids: ids, shots: 5, rule: .random, holdOut: 0, seed: UInt64(seed)).sampleIDs {
                counts[id, default: 0] += 1
            }
        }
        #expect(counts.count == ids.count && counts.values.allSatisfy { (190...310).contains($0) })
    }

    @Test func firstTakesTheFirstInSortedOrderAndNoShotsTakesAll() throws {
        let first = try SampleDraw.select(ids: ids.reversed(), shots: 3, rule: .first, holdOut: 0, seed: 7)
        #expect(first.rule == .first && first.sampleIDs == ["000", "001", "002"])
        let all = try SampleDraw.select(ids: ids.reversed(), shots: nil, rule: .random, holdOut: 0, seed: 7)
        #expect(all.rule == .all && all.sampleIDs == ids)
    }

    /// Held-out parts are drawn first, never trained on, and stay the same for every K.
    @Test func heldOutPartsAreDisjointAndIndependentOfTheShots() throws {
        let all = try SampleDraw.select(ids: ids, shots: nil, rule: .random, holdOut: 6, seed: 3)
        #expect(all.heldOutIDs.count == 6 && all.sampleIDs.count == 34)
        #expect(Set(all.heldOutIDs).isDisjoint(with: all.sampleIDs) && Set(all.heldOutIDs + all.sampleIDs) == Set(ids))
        let five = try SampleDraw.select(ids: ids, shots: 5, rule: .random, holdOut: 6, seed: 3)
        let first = try SampleDraw.select(ids: ids, shots: 5, rule: .first, holdOut: 6, seed: 3)
        #expect(five.heldOutIDs == all.heldOutIDs && first.heldOutIDs == all.heldOutIDs)
        #expect(Set(five.sampleIDs).isDisjoint(with: five.heldOutIDs) && Set(first.sampleIDs).isDisjoint(with: first.heldOutIDs))
        #expect(first.sampleIDs == Array(ids.filter { !all.heldOutIDs.contains($0) }.prefix(5)))
    }

    @Test func countsTheSamplesCannotSupplyAreRefused() {
        #expect(throws: JobError("--hold-out 30 and --shots 11 asks for 41, but data/part has 40 training samples")) {
            try SampleDraw.select(ids: ids, shots: 11, rule: .random, holdOut: 30, seed: 0, source: "data/part")
        }
        #expect(throws: JobError("--hold-out 40 asks for 41 (the held-out ones and one to train on), but the class has 40 training samples")) {
            try SampleDraw.select(ids: ids, shots: nil, rule: .random, holdOut: 40, seed: 0)
        }
        #expect(throws: JobError.self) { try SampleDraw.select(ids: ["a", "a"], shots: 1, rule: .random, holdOut: 0, seed: 0) }
    }
}
