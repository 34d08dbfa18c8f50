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
        /// Where the records went: the data directory's `haven.sqlite`, or
        /// the PostgreSQL database (its URL without the password).
        package var database: String
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
    /// 5. When the restored configuration (`haven.conf`, then `environment`'s
    ///    `HAVEN_STORAGE`, as havend will read them) keeps records in
    ///    PostgreSQL, the verified database is copied into that database,
    ///    which must be new (one transaction: all or nothing), its audit chain
    ///    verified there, and the SQLite file removed from the staging
    ///    directory. Whichever store a backup was taken from, it restores into
    ///    either.
    /// 6. Only then is the staging directory renamed into place.
    ///
    /// - Throws: ``HavenError``: FAILED_PRECONDITION for a target in use or
    ///   not empty, or a PostgreSQL database that is not new; DATA_LOSS for a
    ///   backup that does not verify; UNAVAILABLE for a PostgreSQL database
    ///   that cannot be reached. Nothing is left behind on failure.
    package static func restore(
        file: String,
        key: BackupKey,
        target: DataDirectory,
        replace: Bool,
        operatorID: String,
        now: Int64,
        environment: [String: String] = ProcessInfo.processInfo.environment,
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
        try Self.requireIntact(verdict, entries: manifest.auditEntries, of: "the backup's")
        try store.beginNewLineage(
            principalID: operatorID,
            detail:
                "restored from a backup taken at \(manifest.createdAtUnixMs) (\(manifest.auditEntries) audit entries)",
            at: now
        )
        let configuration = try ServerConfiguration.load(
            fileText: try? String(contentsOfFile: restored.configurationFile, encoding: .utf8),
            fileName: target.configurationFile,
            environment: environment
        )
        if let location = configuration.postgres {
            do {
                try await Self.copy(
                    store,
                    into: location,
                    keys: custodian.keys,
                    publicKey: signer.publicKey,
                    entries: verdict.entries,
                    operatorID: operatorID,
                    now: now,
                    progress: progress
                )
            } catch {
                try? store.close()
                throw error
            }
        }
        try store.close()
        var database = "haven.sqlite"
        if let location = configuration.postgres {
            // The records live in PostgreSQL only: no copy of them stays in the data directory.
            for suffix in ["", "-wal", "-shm"] { try? files.removeItem(atPath: restored.databaseFile + suffix) }
            database = location.redacted
        }

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
        return Report(manifest: manifest, verdict: verdict, previous: previous, database: database)
    }

    /// Copies the staged, verified database into a new PostgreSQL database
    /// and verifies the chain there: the backup's entries, its
    /// `store.restore` and the copy's `store.copy`.
    private static func copy(
        _ source: SQLiteStore,
        into location: PostgresLocation,
        keys: StoreKeys,
        publicKey: Data,
        entries: UInt64,
        operatorID: String,
        now: Int64,
        progress: @escaping @Sendable (String, UInt64, UInt64) -> Void
    ) async throws {
        try await PostgresStore.using(location, keys: keys) { target in
            progress("copy", 0, 1)
            do {
                _ = try await target.copy(from: source, principalID: operatorID, atUnixMs: now)
            } catch let error as HavenError where error.code == .failedPrecondition {
                throw HavenError(
                    code: .failedPrecondition,
                    message:
                        "\(error.message) (\(location.redacted)): a restore fills a new database; create one and name it in storage (haven.conf or HAVEN_STORAGE)"
                )
            }
            progress("copy", 1, 1)
            let verdict = try await AuditVerifier(store: target, publicKey: publicKey).verify { checked, total in
                progress("verify in PostgreSQL", checked, total)
            }
            try Self.requireIntact(
                verdict,
                entries: entries + 2,
                of: "the PostgreSQL copy's",
                advice: "; drop that database before trying again"
            )
        }
    }

    /// DATA_LOSS unless the chain verified and holds the entries expected.
    private static func requireIntact(
        _ verdict: Haven_V1_AuditVerdict,
        entries: UInt64,
        of what: String,
        advice: String = ""
    ) throws {
        guard verdict.intact else {
            throw HavenError(
                code: .dataLoss,
                message:
                    "\(what) audit chain does not verify: entry \(verdict.firstBadSequence): \(verdict.problem)\(advice)"
            )
        }
        guard verdict.entries == entries else {
            throw HavenError(
                code: .dataLoss,
                message: "\(what) audit chain has \(verdict.entries) entries, not the \(entries) expected\(advice)"
            )
        }
    }
}
