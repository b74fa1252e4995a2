@testable import CFMService
import CFMDetector
import CFMModels
import Foundation
import XCTest

final class ServiceConfigTests: XCTestCase {
    func testEmptyFileGivesDefaults() throws {
        XCTAssertEqual(try ServiceConfig.parse(""), ServiceConfig())
        XCTAssertEqual(try ServiceConfig.parse("# nothing\n"), ServiceConfig())
        let d = ServiceConfig()
        XCTAssertNil(d.model.tier)  // the bundle's
        XCTAssertEqual(d.input.endpoint, "tcp://127.0.0.1:5555")
        XCTAssertEqual(d.input.pattern, .sub)
        XCTAssertEqual(d.input.mode, .connect)
        XCTAssertEqual(d.input.topic, "frame")
        XCTAssertEqual(d.output.endpoint, "tcp://127.0.0.1:5556")
        XCTAssertEqual(d.output.topicPrefix, "result")
        XCTAssertFalse(d.output.publishMaps)
        XCTAssertEqual(d.pipeline.queueDepth, 2)
        XCTAssertEqual(d.pipeline.overflow, .dropOldest)
    }

    /// config/cfm.yaml documents every key, with its default value.
    func testShippedConfigDocumentsEveryKeyWithItsDefault() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("config/cfm.yaml")
        let text = try String(contentsOf: url, encoding: .utf8)
        XCTAssertEqual(try ServiceConfig.load(url), ServiceConfig())
        for (section, keys) in ServiceConfig.schema {
            XCTAssertTrue(text.contains("\n\(section):\n"), "section \(section)")
            for key in keys {
                let line = text.split(separator: "\n").first { $0.hasPrefix("  \(key):") }
                XCTAssertNotNil(line, "\(section).\(key) is not documented")
                XCTAssertTrue(line?.contains("#") ?? false, "\(section).\(key) has no comment")
            }
        }
    }

    func testKeysOfDesign() throws {
        let c = try ServiceConfig.parse("""
            model: {tier: tiny, extractors: /x, bundle: /y, precision: bf16}
            input: {endpoint: "ipc:///tmp/a", pattern: pull, mode: bind, topic: cam1}
            output: {endpoint: "tcp://0.0.0.0:7000", topic_prefix: verdict, publish_maps: true}
            pipeline: {queue_depth: 5, overflow: block}
            decision: {threshold: 2.5}
            logging: {journald: off, level: debug}
            """)
        XCTAssertEqual(c.model.tier, .tiny)
        XCTAssertEqual(c.model.precision, .bf16)
        XCTAssertEqual(c.model.extractors, "/x")
        XCTAssertEqual(c.input.pattern, .pull)
        XCTAssertEqual(c.input.mode, .bind)
        XCTAssertEqual(c.input.topic, "cam1")
        XCTAssertEqual(c.output.topicPrefix, "verdict")
        XCTAssertTrue(c.output.publishMaps)
        XCTAssertEqual(c.pipeline.queueDepth, 5)
        XCTAssertEqual(c.pipeline.overflow, .block)
        XCTAssertEqual(c.decision.threshold, 2.5)
        XCTAssertEqual(c.logging.journald, .off)
        XCTAssertEqual(c.logLevel, .debug)
        XCTAssertEqual(c.input.maxWidth, 4096, "unset keys keep their defaults")
    }

    private func assertRefused(_ yaml: String, line: Int?, _ fragment: String, file: StaticString = #filePath, at: UInt = #line) {
        XCTAssertThrowsError(try ServiceConfig.parse(yaml, file: "cfm.yaml"), file: file, line: at) { error in
            guard let e = error as? ConfigError else { return XCTFail("\(error)", file: file, line: at) }
            XCTAssertEqual(e.file, "cfm.yaml", file: file, line: at)
            XCTAssertEqual(e.line, line, "\(e)", file: file, line: at)
            XCTAssertTrue(e.reason.contains(fragment), "\(e)", file: file, line: at)
            XCTAssertFalse(e.description.contains("\n"), "one line: \(e)", file: file, line: at)
            XCTAssertTrue(e.description.hasPrefix("cfm.yaml:"), file: file, line: at)
        }
    }

    func testUnknownKeysAreRefusedWithTheirLine() {
        assertRefused("model:\n  tier: small\n  tierr: tiny\n", line: 3, "unknown key 'model.tierr'")
        assertRefused("model:\n  tier: small\nfoo:\n  bar: 1\n", line: 3, "unknown section 'foo'")
        assertRefused("input:\n  endpoint: \"tcp://a:1\"\n\n  max-width: 3\n", line: 4, "unknown key 'input.max-width'")
    }

    func testOutOfRangeAndBadValuesAreRefusedWithTheirLine() {
        assertRefused("pipeline:\n  queue_depth: 0\n", line: 2, "pipeline.queue_depth: 0 is out of range 1…1024")
        assertRefused("pipeline:\n  overflow: drop_random\n", line: 2, "'drop_random' is not one of drop_oldest, drop_newest, block")
        assertRefused("model:\n  bundle: /m\n  tier: huge\n", line: 3, "'huge' is not one of tiny, small, medium, full")
        assertRefused("model:\n  precision: fp16\n", line: 2, "'fp16' is not one of fp32, bf16")
        assertRefused("input:\n  pattern: sub\n  endpoint: localhost:5555\n", line: 3, "not a ZeroMQ endpoint")
        assertRefused("input:\n  max_width: lots\n", line: 2, "input.max_width: expected an integer")
        assertRefused("output:\n  publish_maps: 3\n", line: 2, "output.publish_maps")
        assertRefused("decision:\n  threshold: -1\n", line: 2, "not a finite non-negative score")
        assertRefused("logging:\n  level: loud\n", line: 2, "'loud' is not one of trace")
        assertRefused("watchdog:\n  stall_timeout_s: 0\n", line: 2, "watchdog.stall_timeout_s")
        assertRefused("model: [1, 2]\n", line: 1, "'model' must be a mapping")
        assertRefused("- a\n- b\n", line: 1, "must be a mapping of sections")
    }

    func testInvalidYAMLAndDuplicatesAreRefusedWithTheirLine() {
        XCTAssertThrowsError(try ServiceConfig.parse("model:\n  tier: [small\n", file: "f.yaml")) { error in
            let e = error as? ConfigError
            XCTAssertNotNil(e?.line, "\(error)")
            XCTAssertTrue(e?.reason.hasPrefix("invalid YAML") ?? false, "\(error)")
        }
        XCTAssertThrowsError(try ServiceConfig.parse("model:\n  tier: small\n  tier: tiny\n", file: "f.yaml")) { error in
            XCTAssertEqual((error as? ConfigError)?.line, 2, "\(error)")
            XCTAssertEqual((error as? ConfigError)?.reason, "duplicate key 'tier'")
        }
    }

    func testMissingFileIsOneLine() {
        XCTAssertThrowsError(try ServiceConfig.load(URL(fileURLWithPath: "/nonexistent/cfm.yaml"))) { error in
            XCTAssertTrue("\(error)".hasPrefix("/nonexistent/cfm.yaml: cannot read"), "\(error)")
        }
    }

    func testPreprocessingComesFromTheBundle() throws {
        let c = try ServiceConfig.parse("preprocessing: {background_removal: false, border_width: 4, cluster_distance: 0.01, seed: 7}")
        // Bare mapper files: the keys set apply over the defaults.
        let o = c.preprocessing.applied(to: PreprocessOptions())
        XCTAssertFalse(o.removeBackground)
        XCTAssertEqual(o.background.borderWidth, 4)
        XCTAssertEqual(o.background.clusterDistance, 0.01)
        XCTAssertEqual(o.background.seed, 7)
        XCTAssertEqual(o.background.iterations, PreprocessOptions().background.iterations)
        // A bundle trained otherwise is refused with the first differing key named; agreeing keys pass.
        XCTAssertEqual(c.preprocessing.disagreement(with: PreprocessOptions())?.hasPrefix("preprocessing.background_removal is false"), true)
        XCTAssertNil(c.preprocessing.disagreement(with: o))
        XCTAssertNil(ServiceConfig().preprocessing.disagreement(with: o))
    }

    func testThresholdNeedsOverrideOrCalibration() throws {
        var c = ServiceConfig()
        XCTAssertThrowsError(try DetectorProcessing.threshold(config: c, manifest: nil)) { error in
            XCTAssertTrue("\(error)".hasPrefix("no threshold:"), "\(error)")
        }
        c.decision.threshold = 3
        XCTAssertEqual(try DetectorProcessing.threshold(config: c, manifest: nil), 3)
    }
}
