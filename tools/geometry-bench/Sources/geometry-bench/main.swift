import CFMData
import CFMGeometry
import CFMTensor
import Foundation

/// `geometry-bench [--width W] [--height H] [--runs N] [--cleaning dbscan|pixel_neighbours]`:
/// background removal of the `cfm bench` frame (`BenchScene`) at any size, timed `runs` times.
/// Prints the median wall time (whole, and of the plane and cluster steps), the peak RSS growth over the frame itself and a checksum of
/// the cleaned cloud and report (equal checksums = identical output).
var width = 800, height = 800, runs = 5, cleaning = ClusterCleaning.dbscan
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let flag = arguments.next() {
    guard let value = arguments.next() else { fatalError("\(flag) needs a value") }
    switch flag {
    case "--width": width = Int(value)!
    case "--height": height = Int(value)!
    case "--runs": runs = Int(value)!
    case "--cleaning": cleaning = ClusterCleaning(rawValue: value)!
    default: fatalError("unknown option \(flag)")
    }
}

func peakRSSKilobytes() -> Int {
    var usage = rusage()
    getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
    return usage.ru_maxrss
}

let source = BenchScene.make(width: width, height: height).cloud.scalars
var options = BackgroundRemovalOptions()
options.clusterCleaning = cleaning
let clock = ContinuousClock()
var times: [Double] = [], planeTimes: [Double] = [], clusterTimes: [Double] = [], checksum: UInt64 = 0, rssGrowth = 0
var report: BackgroundRemovalReport?
for run in 0..<runs {
    var cloud = try OrganizedCloud(height: height, width: width, coordinates: source)
    cloud.coordinates[0] += 0  // own the buffer before timing (the Preprocessor's copy)
    let rssBefore = peakRSSKilobytes()
    let start = clock.now
    var planeEnd = start
    report = try cloud.removeBackground(options: options) { step in
        if step == .plane { planeEnd = clock.now }
    }
    let end = clock.now, elapsed = end - start
    if run == 0 {
        rssGrowth = peakRSSKilobytes() - rssBefore
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for value in cloud.coordinates { hash = (hash ^ UInt64(value.bitPattern)) &* 0x100_0000_01B3 }
        checksum = hash ^ UInt64(bitPattern: Int64(report!.remaining))
    }
    times.append(milliseconds(elapsed))
    planeTimes.append(milliseconds(planeEnd - start))
    clusterTimes.append(milliseconds(end - planeEnd))
}
func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.attoseconds) * 1e-15 + Double(duration.components.seconds) * 1e3
}
let median = times.sorted()[runs / 2]
print(String(format: "%d×%d %@: median %.1f ms over %d runs (%.1f ns/pixel), peak RSS growth %d kB (%.2f B/pixel), checksum %016llx",
             width, height, cleaning.rawValue, median, runs, median * 1e6 / Double(width * height),
             rssGrowth, Double(rssGrowth) * 1024 / Double(width * height), checksum))
print(String(format: "median plane %.1f ms, clusters %.1f ms", planeTimes.sorted()[runs / 2], clusterTimes.sorted()[runs / 2]))
print(report!)
