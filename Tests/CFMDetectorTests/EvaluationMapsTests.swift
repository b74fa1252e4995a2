import CFMDetector
import CFMTensor
import Testing

/// The per-image map normalisations the pixel metrics use (docs/evaluation.md).
@Suite struct EvaluationMapsTests {
    @Test func regionMapDividesByTheMeanOfNonZeroValues() {
        let map = Tensor(shape: [2, 3], scalars: [0, 2, 4, 0, 6, 0])  // non-zero mean 4
        #expect(AnomalyScoring.regionMap(map) == [0, 0.5, 1, 0, 1.5, 0])
        #expect(AnomalyScoring.regionMap(Tensor(shape: [2, 2])) == [0, 0, 0, 0])
    }

    @Test func pixelMapDividesByTheRootOfTheMean() {
        let map = Tensor(shape: [2, 2], scalars: [0, 4, 8, 4])  // mean 4, root 2
        #expect(AnomalyScoring.pixelMap(map) == [0, 2, 4, 2])
        #expect(AnomalyScoring.pixelMap(Tensor(shape: [1, 3])) == [0, 0, 0])
    }
}
