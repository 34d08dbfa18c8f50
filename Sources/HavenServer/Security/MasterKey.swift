import Crypto
import Foundation
import HavenProtocol
import HavenStore

/// The key that wraps every office's key (which wraps its records' keys). It lives in its own file,
/// outside the database: a copy of the database alone reveals no identity.
package struct MasterKey: Sendable {
    package let key: SymmetricKey
    /// Whether it was generated as a development key.
    package let isDevelopmentKey: Bool

    package init(key: SymmetricKey, isDevelopmentKey: Bool) {
        self.key = key
        self.isDevelopmentKey = isDevelopmentKey
    }

    /// The key with its fingerprint, as the store uses it.
    package var material: MasterKeyMaterial { MasterKeyMaterial(key: self.key) }

    static let developmentMarker = "# DEVELOPMENT KEY"

    /// Generates a new random key and writes it to `path` (mode 0600). Refuses
    /// to overwrite an existing file: that would make every identity unreadable.
    package static func generate(at path: String, development: Bool) throws -> MasterKey {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw HavenError(code: .alreadyExists, message: "a master key already exists at \(path)")
        }
        let key = MasterKey(key: SymmetricKey(size: .bits256), isDevelopmentKey: development)
        try key.write(to: path)
        return key
    }

    /// Writes the key file (mode 0600, synced).
    package func write(to path: String) throws {
        let key = self.key
        let development = self.isDevelopmentKey
        var text = """
            # Haven master key: wraps the data key of every office. Without this file the
            # survivor identities in the database cannot be decrypted; with it and the
            # database, they can. Keep it out of backups of the database and guard it.

            """
        if development {
            text += """
                \(Self.developmentMarker): generated for this data directory only, by havend's
                # first run. Never use it for real survivor data: run `haven-admin init` for a
                # production data directory.

                """
        }
        text += key.withUnsafeBytes { Data($0).base64EncodedString() } + "\n"
        try writeSecretFile(text, to: path)
    }

    /// Reads a key written by ``generate(at:development:)``.
    package static func load(from path: String) throws -> MasterKey {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw HavenError(code: .failedPrecondition, message: "cannot read the master key at \(path)")
        }
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        guard
            let encoded = lines.first(where: { !$0.isEmpty && !$0.hasPrefix("#") }),
            let bytes = Data(base64Encoded: encoded), bytes.count == 32
        else {
            throw HavenError(code: .failedPrecondition, message: "the master key at \(path) is not a 256-bit key")
        }
        return MasterKey(
            key: SymmetricKey(data: bytes),
            isDevelopmentKey: lines.contains { $0.hasPrefix(developmentMarker) }
        )
    }
}

/// Writes a file readable by its owner only: created with mode 0600 in the
/// same system call that creates it (no moment at which others could open it),
/// and set back to 0600 if it already existed.
package func writeSecretFile(_ contents: String, to path: String) throws {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else {
        throw HavenError(code: .unavailable, message: "cannot write \(path) (errno \(errno))")
    }
    defer { _ = Foundation.close(descriptor) }
    guard fchmod(descriptor, 0o600) == 0 else {
        throw HavenError(code: .unavailable, message: "cannot make \(path) private (errno \(errno))")
    }
    let bytes = Array(contents.utf8)
    var written = 0
    while written < bytes.count {
        let result = bytes[written...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard result > 0 else {
            throw HavenError(code: .unavailable, message: "cannot write \(path) (errno \(errno))")
        }
        written += result
    }
    guard fsync(descriptor) == 0 else {
        throw HavenError(code: .unavailable, message: "cannot write \(path) (errno \(errno))")
    }
}
