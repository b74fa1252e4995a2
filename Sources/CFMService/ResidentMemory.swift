import Foundation

/// This process's resident memory, from /proc/self/status (Linux; every value is 0 where that
/// file or its line does not exist).
public enum ResidentMemory {
    /// Resident size now (`VmRSS`), MiB.
    public static func currentMegabytes() -> Double { statusMegabytes("VmRSS:") }

    /// Peak resident size (`VmHWM`), MiB, since the process started or since the last `resetPeak()`.
    public static func peakMegabytes() -> Double { statusMegabytes("VmHWM:") }

    /// Resets the peak resident size to the current one (Linux `clear_refs` 5) and returns that
    /// size in MiB: `peakMegabytes()` minus it is then what the code between added at its peak.
    @discardableResult
    public static func resetPeak() -> Double {
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
        return currentMegabytes()
    }

    /// A kB line of /proc/self/status in MiB.
    private static func statusMegabytes(_ field: String) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field) }),
              let kb = Double(line.split(separator: " ").dropFirst().first ?? "")
        else { return 0 }
        return kb / 1024
    }
}
