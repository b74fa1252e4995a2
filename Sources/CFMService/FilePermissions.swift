import CFMDetector
import CFMModels
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a file is to the daemon; names it in refusals.
public enum TrustedFileRole: String, Sendable {
    case config = "config file"
    case extractor = "extractor weights (model.extractors)"
    case modelBundle = "model bundle file (model.bundle)"
    case curveSecretKey = "CURVE secret key (security.secret_key)"
    case authorizedKeys = "authorized CURVE keys (security.authorized_keys)"

    /// A secret must also be unreadable by group and others.
    var isSecret: Bool { self == .curveSecretKey }
}

/// A file the daemon refuses to trust: the path (the file or its directory), what it is and
/// the command that fixes it, in one line.
public struct UntrustedFileError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var reason: String
    public var fix: String

    public var description: String { "\(path) \(reason): \(fix)" }
}

/// sshd's StrictModes for cfm's inputs: whoever can change the config, the model weights or
/// the keys decides every verdict (or who may connect), so such a file is refused unless
/// only root and the running user can change it.
///
/// Rules, for the file and for the directory that holds it (after resolving symlinks, so
/// the real locations are checked):
/// - not writable by group or others (mode & 022 == 0). A directory with the sticky bit
///   (like /tmp, mode 1777) may be: others cannot rename or remove entries they do not
///   own, and the file itself is checked;
/// - owned by root or by the running user: any other owner could `chmod` it writable
///   again, or rewrite it. (Under systemd with `PrivateUsers=yes`, files of other users
///   show up as `nobody` and are refused for the same reason.)
/// - a secret key additionally unreadable by group and others (mode & 077 == 0).
///
/// Only the containing directory is checked, not every ancestor as sshd does: that keeps
/// installs under /tmp-like scratch trees usable while covering the rename-and-replace
/// attack on the file itself.
public enum FilePermissions {
    /// Refuses `url` (a file or a directory) and its containing directory unless they are
    /// trusted by the rules above. `user` is the running user (the effective uid).
    public static func requireTrusted(_ url: URL, role: TrustedFileRole, user: uid_t = geteuid()) throws {
        guard let resolved = realpath(url.path, nil) else {
            throw UntrustedFileError(path: url.path, reason: "(\(role.rawValue)) cannot be checked: \(String(cString: strerror(errno)))",
                                     fix: "check the path")
        }
        let path = String(cString: resolved)
        free(resolved)
        let item = try status(path, role: role)
        try check(path, item, what: role.rawValue, user: user, secret: role.isSecret)
        let parent = (path as NSString).deletingLastPathComponent
        if parent != path && !parent.isEmpty {
            try check(parent, try status(parent, role: role), what: "directory holding the \(role.rawValue) \(path)", user: user, secret: false)
        }
    }

    private static func status(_ path: String, role: TrustedFileRole) throws -> stat {
        var s = stat()
        guard stat(path, &s) == 0 else {
            throw UntrustedFileError(path: path, reason: "(\(role.rawValue)) cannot be checked: \(String(cString: strerror(errno)))",
                                     fix: "check the path")
        }
        return s
    }

    private static func check(_ path: String, _ s: stat, what: String, user: uid_t, secret: Bool) throws {
        let mode = s.st_mode & 0o7777
        let octal = String(format: "%04o", mode)
        let isDirectory = (s.st_mode & S_IFMT) == S_IFDIR
        if s.st_uid != 0 && s.st_uid != user {
            throw UntrustedFileError(path: path, reason: "(\(what)) is owned by uid \(s.st_uid), neither root nor the running user (uid \(user))",
                                     fix: "run chown root \(path)")
        }
        let groupWritable = mode & 0o020 != 0, otherWritable = mode & 0o002 != 0
        let sticky = isDirectory && mode & mode_t(S_ISVTX) != 0
        if (groupWritable || otherWritable) && !sticky {
            let who = groupWritable && otherWritable ? "group and others" : groupWritable ? "its group" : "others"
            throw UntrustedFileError(path: path, reason: "(\(what)) is writable by \(who) (mode \(octal))", fix: "run chmod go-w \(path)")
        }
        if secret && mode & 0o077 != 0 {
            throw UntrustedFileError(path: path, reason: "(\(what)) is readable by group or others (mode \(octal))", fix: "run chmod 0600 \(path)")
        }
    }
}

extension ServiceConfig {
    /// Refuses the model files this config makes the daemon read (extractor weights and
    /// bundle files that exist; a missing one is the loader's to report) unless trusted.
    public func requireTrustedModelFiles() throws {
        let extractors = URL(fileURLWithPath: model.extractors), bundle = URL(fileURLWithPath: model.bundle)
        let files = [ExtractorFile.vit, ExtractorFile.pointMAE].map { (extractors.appendingPathComponent($0), TrustedFileRole.extractor) }
            + [BundleFile.manifest, BundleFile.rgbToXYZ, BundleFile.xyzToRGB].map { (bundle.appendingPathComponent($0), TrustedFileRole.modelBundle) }
        for (url, role) in files where FileManager.default.fileExists(atPath: url.path) {
            try FilePermissions.requireTrusted(url, role: role)
        }
    }
}

extension DetectorProcessing {
    /// `makeProcessors` after `requireTrustedModelFiles`: what `cfm serve` loads at start
    /// and on every reload.
    public static func makeTrustedProcessors(_ config: ServiceConfig) throws -> FrameStages {
        try config.requireTrustedModelFiles()
        return try makeProcessors(config)
    }
}
