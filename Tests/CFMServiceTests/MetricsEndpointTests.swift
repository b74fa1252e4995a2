@testable import CFMService
import Foundation
import Logging
import XCTest

/// An HTTP request by curl (a real client): the status code and the body.
func curl(_ url: String, method: String = "GET", maxTime: Double = 5) throws -> (status: Int, body: String) {
    let process = Process(), out = Pipe()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    process.arguments = ["-sS", "-X", method, "--max-time", "\(maxTime)", "-w", "\n%{http_code}", url]
    process.standardOutput = out
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    let split = text.lastIndex(of: "\n") ?? text.startIndex
    return (Int(text[split...].dropFirst()) ?? 0, String(text[..<split]))
}

/// The value of the sample `series` (`name` or `name{labels}`, as exposed) in a text exposition.
func sample(_ exposition: String, _ series: String) -> Double? {
    exposition.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
}

/// Journal field lists built by the real `JournalLogHandler` for every record (nothing is sent).
final class JournalRecords: @unchecked Sendable {
    private let lock = NSLock()
    private var records: [[String]] = []
    func add(_ fields: [String]) { lock.lock(); records.append(fields); lock.unlock() }
    var all: [[String]] { lock.lock(); defer { lock.unlock() }; return records }
    /// The records carrying MESSAGE_ID=`event`.
    func tagged(_ event: LifecycleEvent) -> [[String]] { all.filter { $0.contains("MESSAGE_ID=\(event.messageId)") } }
}

struct JournalFieldsCapture: LogHandler {
    var handler = JournalLogHandler(label: "test", destination: .journal)
    let records: JournalRecords
    init(_ records: JournalRecords) { self.records = records; handler.logLevel = .trace }
    var metadata: Logger.Metadata { get { handler.metadata } set { handler.metadata = newValue } }
    var logLevel: Logger.Level { get { handler.logLevel } set { handler.logLevel = newValue } }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? { get { handler[metadataKey: key] } set { handler[metadataKey: key] = newValue } }
    func log(event: LogEvent) { records.add(handler.fields(event)) }
}

final class MetricsEndpointTests: XCTestCase {
    /// Frames through a running service, then one scrape: the counters match what was sent;
    /// lifecycle records carry their MESSAGE_ID; passes are logged at INFO when configured.
    func testAScrapeCountsWhatTheServiceAnswered() throws {
        let dir = TempDir()
        var config = serviceTestConfig(dir)
        config.metrics.listen = "127.0.0.1:0"
        config.logging.logPasses = true
        let records = JournalRecords()
        var logger = Logger(label: "test") { _ in JournalFieldsCapture(records) }
        logger.logLevel = .info
        // slowScorer: even ids pass (score 1), odd ids reject (score 3), threshold 2; "fail-…" is a frame error.
        let service = EdgeService(config: config, logger: logger) { _ in FrameStages(scoring: [slowScorer(0.001)]) }
        let sensor = try FakeSensor(input: config.input.endpoint, output: config.output.endpoint)
        let (thread, _) = startService(service)
        XCTAssertTrue(waitUntil(10) { service.metricsAddress != nil })
        let url = "http://\(try XCTUnwrap(service.metricsAddress))/metrics"
        XCTAssertNotEqual(service.metricsAddress?.port, 0)
        usleep(300_000) // SUB join

        for i in 0..<10 { try sensor.send(FrameCodec.encode(makeFrame(id: "f-\(i)", width: 8, height: 6))) }
        var bad = FrameCodec.encode(makeFrame(id: "b", width: 8, height: 6))
        bad[1] = Array("{oops".utf8)
        try sensor.send(bad)
        try sensor.send(bad)
        try sensor.send(FrameCodec.encode(makeFrame(id: "fail-1", width: 8, height: 6)))
        XCTAssertEqual(try sensor.results(13).count, 13)
        XCTAssertTrue(waitUntil(5) { (service.stats?.published ?? 0) == 13 })

        let scrape = try curl(url)
        XCTAssertEqual(scrape.status, 200, scrape.body)
        let text = scrape.body
        XCTAssertEqual(sample(text, #"cfm_frames_total{verdict="pass"}"#), 5, text)
        XCTAssertEqual(sample(text, #"cfm_frames_total{verdict="reject"}"#), 5)
        XCTAssertEqual(sample(text, #"cfm_frames_total{verdict="error"}"#), 3)
        XCTAssertEqual(sample(text, #"cfm_frames_total{verdict="dropped"}"#), 0)
        XCTAssertEqual(sample(text, #"cfm_frame_errors_total{code="bad_header"}"#), 2)
        XCTAssertEqual(sample(text, #"cfm_frame_errors_total{code="too_few_points"}"#), 1)
        XCTAssertEqual(sample(text, #"cfm_frame_errors_total{code="bad_size"}"#), 0)
        XCTAssertEqual(sample(text, "cfm_frames_received_total"), 13)
        XCTAssertEqual(sample(text, "cfm_results_undelivered_total"), 0)
        XCTAssertEqual(sample(text, "cfm_queue_depth"), 0)
        XCTAssertEqual(sample(text, "cfm_queue_capacity"), 64)
        XCTAssertEqual(sample(text, "cfm_frames_in_flight"), 0)
        XCTAssertEqual(sample(text, "cfm_threshold"), 2)
        XCTAssertEqual(sample(text, #"cfm_model_info{tier="small",model="fake",bundle="\#(config.model.bundle)"}"#), 1, text)
        XCTAssertEqual(sample(text, #"cfm_stage_duration_seconds_count{stage="fake"}"#), 10, text)
        XCTAssertEqual(sample(text, "cfm_frame_latency_seconds_count"), 10)
        // Every pass scored 1 against the threshold 2: the ratio histogram holds them at 0.5.
        XCTAssertEqual(sample(text, #"cfm_pass_score_ratio_bucket{le="0.4"}"#), 0, text)
        XCTAssertEqual(sample(text, #"cfm_pass_score_ratio_bucket{le="0.5"}"#), 5)
        XCTAssertEqual(sample(text, #"cfm_pass_score_recent{quantile="0.5"}"#), 1)
        XCTAssertEqual(sample(text, #"cfm_reloads_total{outcome="applied"}"#), 0)
        XCTAssertNil(sample(text, "cfm_curve_refused_peers_total"), "CURVE is off")
        XCTAssertNotNil(sample(text, "cfm_start_time_seconds"))
        XCTAssertTrue(text.contains("# TYPE cfm_frames_total counter"), text)

        // More frames: the counters follow (a second scrape is not a copy of the first).
        for i in 10..<14 { try sensor.send(FrameCodec.encode(makeFrame(id: "f-\(i)", width: 8, height: 6))) }
        XCTAssertEqual(try sensor.results(4).count, 4)
        XCTAssertTrue(waitUntil(5) { (service.stats?.published ?? 0) == 17 })
        let again = try curl(url).body
        XCTAssertEqual(sample(again, #"cfm_frames_total{verdict="pass"}"#), 7)
        XCTAssertEqual(sample(again, "cfm_frames_received_total"), 17)

        XCTAssertEqual(try curl(url.replacingOccurrences(of: "/metrics", with: "/other")).status, 404)
        XCTAssertEqual(try curl(url, method: "POST").status, 405)

        service.requestStop()
        XCTAssertTrue(waitUntil(10) { thread.isFinished })
        // Joined at stop: the port no longer answers.
        XCTAssertEqual(try curl(url, maxTime: 2).status, 0)

        XCTAssertEqual(records.tagged(.ready).count, 1)
        XCTAssertEqual(records.tagged(.stopped).count, 1)
        XCTAssertTrue(records.tagged(.ready)[0].contains("PRIORITY=6"))
        let passes = records.all.filter { $0.contains("VERDICT=pass") && $0.contains("PRIORITY=6") }
        XCTAssertEqual(passes.count, 7, "\(records.all)")
        XCTAssertTrue(passes[0].contains { $0.hasPrefix("MESSAGE=pass f-0 score 1.0000 <= 2.0000") }, "\(passes[0])")
    }

    /// A client that connects and sends nothing, one that sends too much and one that
    /// disconnects at once do not keep the next scrape waiting longer than the request timeout.
    func testSilentAndOversizedClientsDoNotStallAScrape() throws {
        let server = try MetricsServer(address: try ListenAddress("127.0.0.1:0"), requestTimeout: 1) { Array("cfm_up 1\n".utf8) }
        server.start()
        defer { server.stop() }
        let url = "http://\(server.address)/metrics"

        // The silent client stays connected throughout: without the request timeout the server
        // would wait on it forever and curl would give up (--max-time 5, status 0).
        let silent = try connectedSocket(server.address.port)
        defer { close(silent) }
        let scrape = try curl(url)
        XCTAssertEqual(scrape.status, 200)
        XCTAssertEqual(sample(scrape.body, "cfm_up"), 1)
        XCTAssertTrue(try response(silent).hasPrefix("HTTP/1.1 408 "))

        let flood = try connectedSocket(server.address.port)
        defer { close(flood) }
        let junk = [UInt8](repeating: UInt8(ascii: "a"), count: MetricsServer.maxRequestBytes) // all read: a clean close
        XCTAssertEqual(junk.withUnsafeBytes { send(flood, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }, junk.count)
        XCTAssertTrue(try response(flood).hasPrefix("HTTP/1.1 431 "))

        close(try connectedSocket(server.address.port))
        XCTAssertEqual(try curl(url).status, 200)
    }

    /// What only a snapshot knows (reloads, refused CURVE peers, the model in force) follows it scrape by scrape.
    func testScrapeTimeMetricsFollowTheSnapshot() {
        let metrics = ServiceMetrics(startedWall: 1000)
        var config = ServiceConfig()
        config.model.bundle = "/models/a"
        var stats = PipelineStats()
        let before = String(decoding: metrics.exposition(.init(stats: stats, reloads: (0, 0), refusedPeers: nil, config: config)), as: UTF8.self)
        XCTAssertFalse(before.contains("cfm_pass_score_recent"), "no pass yet: no quantiles")
        stats.received = 3
        metrics.observe(FrameResult(frameId: "p", verdict: .pass, score: 1.5, threshold: 2, tier: "small", model: "m-a"), delivered: false)
        var text = String(decoding: metrics.exposition(.init(stats: stats, reloads: (0, 1), refusedPeers: 2, config: config)), as: UTF8.self)
        XCTAssertEqual(sample(text, #"cfm_reloads_total{outcome="refused"}"#), 1, text)
        XCTAssertEqual(sample(text, "cfm_curve_refused_peers_total"), 2)
        XCTAssertEqual(sample(text, "cfm_results_undelivered_total"), 1)
        XCTAssertEqual(sample(text, #"cfm_pass_score_ratio_bucket{le="0.8"}"#), 1)
        XCTAssertEqual(sample(text, #"cfm_pass_score_ratio_bucket{le="0.7"}"#), 0)
        XCTAssertEqual(sample(text, "cfm_start_time_seconds"), 1000)
        XCTAssertEqual(sample(text, #"cfm_model_info{tier="small",model="m-a",bundle="/models/a"}"#), 1, text)

        // A reload applied a new bundle whose frames name another model: one model_info series, the new one.
        config.model.bundle = "/models/b"
        stats.received = 10
        metrics.observe(FrameResult(frameId: "r", verdict: .reject, score: 5, threshold: 1.3691728, tier: "small", model: "m-b"), delivered: true)
        text = String(decoding: metrics.exposition(.init(stats: stats, reloads: (1, 1), refusedPeers: 5, config: config)), as: UTF8.self)
        XCTAssertEqual(sample(text, "cfm_frames_received_total"), 10)
        XCTAssertEqual(sample(text, #"cfm_reloads_total{outcome="applied"}"#), 1)
        XCTAssertEqual(sample(text, #"cfm_reloads_total{outcome="refused"}"#), 1)
        XCTAssertEqual(sample(text, "cfm_curve_refused_peers_total"), 5)
        XCTAssertEqual(sample(text, "cfm_threshold"), 1.3691728, "the Float as results print it")
        XCTAssertEqual(text.split(separator: "\n").filter { $0.hasPrefix("cfm_model_info{") }.count, 1, text)
        XCTAssertEqual(sample(text, #"cfm_model_info{tier="small",model="m-b",bundle="/models/b"}"#), 1, text)
        XCTAssertEqual(sample(text, #"cfm_pass_score_recent{quantile="0.5"}"#), 1.5)
    }

    func testListenAddresses() throws {
        XCTAssertEqual(try ListenAddress("127.0.0.1:9464"), ListenAddress(host: "127.0.0.1", port: 9464))
        XCTAssertEqual(try ListenAddress("[::1]:9464"), ListenAddress(host: "::1", port: 9464))
        XCTAssertEqual(try ListenAddress("[::1]:9464").description, "[::1]:9464")
        for bad in ["9464", "127.0.0.1:", ":9464", "127.0.0.1:70000", "host:port"] {
            XCTAssertThrowsError(try ListenAddress(bad), bad)
        }
        XCTAssertNil(try ServiceConfig.parse("").metrics.listen)
        XCTAssertEqual(try ServiceConfig.parse("metrics: {listen: \"127.0.0.1:9464\"}").metrics.listen, "127.0.0.1:9464")
        XCTAssertThrowsError(try ServiceConfig.parse("metrics: {listen: \"localhost\"}", file: "c.yaml")) {
            XCTAssertTrue("\($0)".hasPrefix("c.yaml:1: metrics.listen: 'localhost' is not host:port"), "\($0)")
        }
        // A port that is taken fails the start with a one-line reason.
        let holder = try MetricsServer(address: try ListenAddress("127.0.0.1:0")) { [] }
        XCTAssertThrowsError(try MetricsServer(address: holder.address) { [] }) {
            XCTAssertTrue("\($0)".contains("Address already in use"), "\($0)")
        }
    }

    private func connectedSocket(_ port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else { close(fd); throw ListenAddressError("connect: \(String(cString: strerror(errno)))") }
        return fd
    }

    /// Everything the server sends until it closes (at most 5 s).
    private func response(_ fd: Int32) throws -> String {
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var bytes: [UInt8] = [], chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            bytes += chunk[..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
