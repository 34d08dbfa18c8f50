import Foundation
import HavenProtocol
import HavenStore

/// Restores a backup into a data directory of a stopped server (on a new
/// machine, or replacing one), verifying everything before anything is put
/// in place.
package enum BackupRestore {
    /// What a restore did.
    package struct Report: Sendable {
        package var manifest: BackupManifest
        package var verdict: Haven_V1_AuditVerdict
        /// Where the directory it replaced was moved, if it replaced one.
        package var previous: String?
    }

    /// Restores `file` into `target`.
    ///
    /// 1. The target must be empty or absent — or, with `replace`, a
    ///    deployment no server runs on (its lock is taken), which is moved
    ///    aside, never deleted.
    /// 2. The backup is decrypted into a staging directory beside the target,
    ///    every file checked against the manifest.
    /// 3. The database must pass SQLite's integrity check, open with the
    ///    backup's master key, and its audit chain must verify (signed
    ///    checkpoints included) with the backup's signing key and hold the
    ///    entries the manifest says.
    /// 4. The restored database becomes a new lineage (feed cursors issued
    ///    before are answered with a FeedReset), with an audit entry saying so.
    /// 5. Only then is the staging directory renamed into place.
    ///
    /// - Throws: ``HavenError``: FAILED_PRECONDITION for a target in use or
    ///   not empty; DATA_LOSS for a backup that does not verify. Nothing is
    ///   left behind on failure.
    package static func restore(
        file: String,
        key: BackupKey,
        target: DataDirectory,
        replace: Bool,
        operatorID: String,
        now: Int64,
        progress: @escaping @Sendable (String, UInt64, UInt64) -> Void = { _, _, _ in }
    ) async throws -> Report {
        let files = FileManager.default
        let existing = (try? files.contentsOfDirectory(atPath: target.root.path)) ?? []
        var lock: DataDirectory.Lock?
        if !existing.isEmpty {
            guard replace else {
                throw HavenError(
                    code: .failedPrecondition,
                    message:
                        "\(target.root.path) is not empty; restore into a new directory, or pass --replace to move this one aside"
                )
            }
            lock = try target.lock()
        }
        defer { withExtendedLifetime(lock) {} }

        let staging = URL(fileURLWithPath: target.root.path + ".restoring-\(getpid())", isDirectory: true)
        try? files.removeItem(at: staging)
        try files.createDirectory(
            at: staging,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
        var placed = false
        defer { if !placed { try? files.removeItem(at: staging) } }

        let manifest = try BackupArchive.extract(file, key: key, into: staging) { progress("decrypt", $0, $1) }
        let restored = DataDirectory(staging)
        let custodian = try KeyCustodian.load(masterKeyFile: restored.masterKeyFile)
        let store = try SQLiteStore(path: restored.databaseFile, keys: custodian.keys)
        let integrity = try store.integrityCheck()
        guard integrity == "ok" else {
            throw HavenError(
                code: .dataLoss,
                message: "the backup's database fails SQLite's integrity check: \(integrity)"
            )
        }
        let signer = try CheckpointSigner.loadExisting(at: restored.auditSigningKeyFile)
        let verdict = try await AuditVerifier(store: store, publicKey: signer.publicKey).verify { checked, total in
            progress("verify", checked, total)
        }
        guard verdict.intact else {
            throw HavenError(
                code: .dataLoss,
                message:
                    "the backup's audit chain does not verify: entry \(verdict.firstBadSequence): \(verdict.problem)"
            )
        }
        guard verdict.entries == manifest.auditEntries else {
            throw HavenError(
                code: .dataLoss,
                message:
                    "the backup's audit chain has \(verdict.entries) entries, its manifest says \(manifest.auditEntries)"
            )
        }
        try store.beginNewLineage(
            principalID: operatorID,
            detail:
                "restored from a backup taken at \(manifest.createdAtUnixMs) (\(manifest.auditEntries) audit entries)",
            at: now
        )
        try store.close()

        var previous: String?
        if !existing.isEmpty {
            let aside = target.root.path + ".before-restore-\(now)"
            guard rename(target.root.path, aside) == 0 else {
                throw HavenError(code: .unavailable, message: "cannot move \(target.root.path) aside (errno \(errno))")
            }
            previous = aside
        } else {
            try? files.removeItem(at: target.root)
        }
        guard rename(staging.path, target.root.path) == 0 else {
            throw HavenError(
                code: .unavailable,
                message: "cannot move the restored files into \(target.root.path) (errno \(errno))"
            )
        }
        placed = true
        return Report(manifest: manifest, verdict: verdict, previous: previous)
    }
}
