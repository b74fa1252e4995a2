import Foundation

/// Peak resident set size of this process in MiB (`VmHWM` of /proc/self/status) since it
/// started or since the last `startPeakMeasurement()`, or 0 where that file does not exist.
func peakResidentMegabytes() -> Double { statusMegabytes("VmHWM:") }

/// Resets the peak resident size to the current one (Linux `clear_refs` 5) and returns that
/// size in MiB: `peakResidentMegabytes()` minus it is then what the code between added at its peak.
func startPeakMeasurement() -> Double {
    try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    return statusMegabytes("VmRSS:")
}

/// A kB line of /proc/self/status in MiB (0 where the file or line does not exist).
private func statusMegabytes(_ field: String) -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field) }),
          let kb = Double(line.split(separator: " ").dropFirst().first ?? "")
    else { return 0 }
    return kb / 1024
}

/// Monotonic time in milliseconds.
func nowMilliseconds() -> Double {
    Double(DispatchTime.now().uptimeNanoseconds) / 1e6
}

/// Median of `values` (mean of the middle two for an even count; 0 when empty).
func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return 0 }
    let s = values.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}
