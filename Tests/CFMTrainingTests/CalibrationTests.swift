import CFMTraining
import Testing

@Suite struct CalibrationTests {
    @Test func thresholdRejectsAtMostTheRate() throws {
        let scores = (1...100).map { Float($0) }
        let c = try Calibrator.calibrate(scores: scores.shuffled(), falseRejectRate: 0.05)
        #expect(c.threshold == 95)  // 5 of 100 scores lie above it
        #expect(scores.filter { $0 > c.threshold }.count == 5)
        #expect(c.min == 1 && c.max == 100 && c.samples == 100 && c.median == 51)
    }

    @Test func smallRatesNeedEnoughSamples() throws {
        #expect(throws: CalibrationError.tooFewSamples(samples: 8, needed: 100, rate: 0.01)) {
            try Calibrator.calibrate(scores: [Float](repeating: 1, count: 8), falseRejectRate: 0.01)
        }
        #expect(throws: CalibrationError.invalidRate(0)) { try Calibrator.calibrate(scores: [1], falseRejectRate: 0) }
        // 8 samples support 1/8: the threshold is then the second largest score.
        #expect(try Calibrator.calibrate(scores: (1...8).map(Float.init), falseRejectRate: 0.125).threshold == 7)
    }
}
