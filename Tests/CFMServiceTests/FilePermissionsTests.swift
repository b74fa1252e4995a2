@testable import CFMService
import CFMDetector
import CFMModels
import Foundation
import XCTest

final class FilePermissionsTests: XCTestCase {
    private func file(_ dir: TempDir, _ name: String, mode: mode_t = 0o644) throws -> URL {
        let url = URL(fileURLWithPath: dir.path(name))
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try "model: {tier: tiny}\n".write(to: url, atomically: true, encoding: .utf8)
        chmod(url.path, mode)
        return url
    }

    func testWorldWritableConfigIsRefusedWithTheFix() throws {
        let dir = TempDir()
        let config = try file(dir, "cfm.yaml", mode: 0o666)
        XCTAssertThrowsError(try ServiceConfig.load(config)) { error in
            XCTAssertEqual("\(error)", "\(config.path) (config file) is writable by group and others (mode 0666): run chmod go-w \(config.path)")
        }
        chmod(config.path, 0o664)
        XCTAssertThrowsError(try ServiceConfig.load(config)) { XCTAssertTrue("\($0)".contains("is writable by its group (mode 0664)"), "\($0)") }
        chmod(config.path, 0o644)
        XCTAssertEqual(try ServiceConfig.load(config).model.tier, .tiny)
    }

    func testWorldWritableModelDirectoryIsRefusedBeforeLoading() throws {
        let dir = TempDir()
        var config = ServiceConfig()
        config.model.extractors = dir.path("extractors")
        config.model.bundle = dir.path("model")
        _ = try file(dir, "extractors/\(ExtractorFile.vit)")
        let mapper = try file(dir, "model/\(BundleFile.rgbToXYZ)")
        let model = mapper.deletingLastPathComponent().path
        XCTAssertNoThrow(try config.requireTrustedModelFiles())
        chmod(model, 0o777)
        let expected = "\(model) (directory holding the model bundle file (model.bundle) \(mapper.path)) is writable by group and others (mode 0777): run chmod go-w \(model)"
        XCTAssertThrowsError(try config.requireTrustedModelFiles()) { XCTAssertEqual("\($0)", expected) }
        // The daemon's factory refuses it before reading a byte of the weights.
        XCTAssertThrowsError(try DetectorProcessing.makeTrustedProcessors(config)) { XCTAssertEqual("\($0)", expected) }
        chmod(model, 0o755)
        chmod(dir.path("extractors/\(ExtractorFile.vit)"), 0o646)
        XCTAssertThrowsError(try config.requireTrustedModelFiles()) {
            XCTAssertTrue("\($0)".hasPrefix("\(dir.path("extractors/\(ExtractorFile.vit)")) (extractor weights (model.extractors)) is writable by others (mode 0646)"), "\($0)")
        }
    }

    func testSymlinksAreCheckedWhereTheyPoint() throws {
        let dir = TempDir()
        let real = try file(dir, "shared/cfm.yaml")
        chmod(real.deletingLastPathComponent().path, 0o777)
        let link = URL(fileURLWithPath: dir.path("cfm.yaml"))
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: real)
        XCTAssertThrowsError(try FilePermissions.requireTrusted(link, role: .config)) {
            XCTAssertTrue("\($0)".hasPrefix("\(real.deletingLastPathComponent().path) (directory holding the config file \(real.path))"), "\($0)")
        }
    }

    /// A sticky directory (like /tmp) protects the entries others do not own.
    func testStickyDirectoryMayBeWorldWritable() throws {
        let dir = TempDir()
        let config = try file(dir, "scratch/cfm.yaml")
        chmod(config.deletingLastPathComponent().path, 0o1777)
        XCTAssertNoThrow(try FilePermissions.requireTrusted(config, role: .config))
        chmod(config.deletingLastPathComponent().path, 0o0777)
        XCTAssertThrowsError(try FilePermissions.requireTrusted(config, role: .config))
    }

    func testOwnerMustBeRootOrTheRunningUser() throws {
        let dir = TempDir()
        let config = try file(dir, "cfm.yaml")
        // Checked as if another user (uid 4242) were running: the file (ours, or root's) must then be refused unless root owns it.
        let owner = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: config.path)[.ownerAccountID] as? Int)
        XCTAssertNoThrow(try FilePermissions.requireTrusted(config, role: .config, user: uid_t(owner)))
        if owner == 0 {
            XCTAssertNoThrow(try FilePermissions.requireTrusted(config, role: .config, user: 4242), "root's files are trusted")
            guard chown(config.path, 4242, 4242) == 0 else { return XCTFail("chown as root") }
        }
        XCTAssertThrowsError(try FilePermissions.requireTrusted(config, role: .config, user: owner == 0 ? 0 : 4242)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(config.path) (config file) is owned by uid "), "\(error)")
            XCTAssertTrue("\(error)".hasSuffix("neither root nor the running user (uid \(owner == 0 ? 0 : 4242)): run chown root \(config.path)"), "\(error)")
        }
    }

    func testMissingFileSaysSo() {
        XCTAssertThrowsError(try FilePermissions.requireTrusted(URL(fileURLWithPath: "/nonexistent/x.key"), role: .authorizedKeys)) {
            XCTAssertEqual("\($0)", "/nonexistent/x.key (authorized CURVE keys (security.authorized_keys)) cannot be checked: No such file or directory: check the path")
        }
    }
}
