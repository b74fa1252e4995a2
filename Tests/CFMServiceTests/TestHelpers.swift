import CFMData
import CFMDetector
import CFMService
import CFMTensor
import Foundation
import XCTest

/// A small valid frame: a plane at z = 0.5 m with a raised box in the middle.
func makeFrame(id: String, width: Int = 32, height: Int = 24, unit: LengthUnit = .m) -> Frame {
    var rgb = [UInt8](repeating: 0, count: width * height * 3)
    var xyz = [Float](repeating: 0, count: width * height * 3)
    for y in 0..<height {
        for x in 0..<width {
            let p = y * width + x
            rgb[3 * p] = UInt8(x * 255 / width); rgb[3 * p + 1] = UInt8(y * 255 / height); rgb[3 * p + 2] = 128
            let inside = abs(x - width / 2) < width / 4 && abs(y - height / 2) < height / 4
            xyz[3 * p] = (Float(x) - Float(width) / 2) * 0.001
            xyz[3 * p + 1] = (Float(y) - Float(height) / 2) * 0.001
            xyz[3 * p + 2] = inside ? 0.48 : 0.5
        }
    }
    if unit == .mm { xyz = xyz.map { $0 * 1000 } }
    return Frame(frameId: id, timestampNs: 42, unit: unit, rgb: RGBImage(height: height, width: width, bytes: rgb),
                 cloud: Tensor(shape: [height, width, 3], scalars: xyz))
}

/// A temporary directory removed at deinit.
final class TempDir {
    let url: URL
    init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("cfm-service-tests-\(UUID().uuidString.prefix(8))")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func endpoint(_ name: String) -> String { "ipc://" + path(name) }
}

/// A `NotifyListener` in `directory` with NOTIFY_SOCKET pointing at it while it lives (the
/// daemon under test runs in this process); the sd_notify variables are cleared at the end.
final class ScopedNotifyListener {
    let listener: NotifyListener

    init(directory: TempDir) {
        listener = NotifyListener(path: directory.path("notify.sock"))
        setenv("NOTIFY_SOCKET", listener.path, 1)
    }

    deinit {
        unsetenv("NOTIFY_SOCKET")
        unsetenv("WATCHDOG_USEC")
        unsetenv("WATCHDOG_PID")
    }

    var path: String { listener.path }
    func drain() { listener.drain() }
    func receive(timeout: Double, until: (([String]) -> Bool)? = nil) -> [String] { listener.receive(timeout: timeout, until: until) }
}

/// A daemon config on ipc:// endpoints in `dir`: PULL input (bound), PUB output, block overflow.
func serviceTestConfig(_ dir: TempDir) -> ServiceConfig {
    var c = ServiceConfig()
    c.input.endpoint = dir.endpoint("in")
    c.input.pattern = .pull
    c.input.mode = .bind
    c.input.maxWidth = 64
    c.input.maxHeight = 64
    c.output.endpoint = dir.endpoint("out")
    c.pipeline.queueDepth = 64
    c.pipeline.overflow = .block
    c.logging.journald = .off
    return c
}

/// What `EdgeService.run` returned on its thread.
final class RunOutcome: @unchecked Sendable {
    private let lock = NSLock()
    private var _value: EdgeService.Outcome?
    var value: EdgeService.Outcome? { lock.lock(); defer { lock.unlock() }; return _value }
    func set(_ v: EdgeService.Outcome) { lock.lock(); _value = v; lock.unlock() }
}

/// Runs `service` on its own thread (as `cfm serve` runs it on the main thread).
func startService(_ service: EdgeService) -> (thread: Thread, outcome: RunOutcome) {
    let outcome = RunOutcome()
    let t = Thread {
        do { outcome.set(try service.run()) } catch { XCTFail("run: \(error)") }
    }
    t.start()
    return (t, outcome)
}

func waitUntil(_ timeout: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date(timeIntervalSinceNow: timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(5000)
    }
    return condition()
}
