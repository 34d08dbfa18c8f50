import Foundation
import GRDB
import HavenProtocol

extension SQLiteStore {
    /// Writes a consistent copy of the live database to `path` (`VACUUM
    /// INTO`, from a reader: writes go on meanwhile, the copy is one
    /// snapshot), and reads back what it holds of the audit trail.
    package func snapshot(to path: String) async throws -> SnapshotInfo {
        do {
            try await self.databasePool.unsafeRead { db in
                try db.execute(sql: "VACUUM INTO ?", arguments: [path])
            }
            return try Self.auditHead(ofCopy: path)
        } catch {
            throw self.failed(error)
        }
    }

    /// The audit trail's length and head in a database copy.
    static func auditHead(ofCopy path: String) throws -> SnapshotInfo {
        let copy = try DatabaseQueue(path: path, configuration: Self.readOnly)
        defer { try? copy.close() }
        return try copy.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT sequence, hash FROM audit ORDER BY sequence DESC LIMIT 1")
            let hash: Data = row?["hash"] ?? Data()
            return SnapshotInfo(
                auditEntries: UInt64(row?["sequence"] as Int64? ?? 0),
                auditHead: hash.map { String(format: "%02x", $0) }.joined()
            )
        }
    }

    private static var readOnly: Configuration {
        var configuration = Configuration()
        configuration.readonly = true
        return configuration
    }

    /// `PRAGMA integrity_check`: "ok", or what SQLite found.
    package func integrityCheck() throws -> String {
        try self.databasePool.read { db in
            try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ")
        }
    }

    /// Makes the database a new lineage after a restore: a new feed epoch (so
    /// feed cursors issued before are recognised as another lineage's), and
    /// an audit entry saying what was restored.
    package func beginNewLineage(principalID: String, detail: String, at: Int64) throws {
        try self.writeSynchronously { tx in
            guard let sql = tx as? SQLTransaction else { return }
            try sql.beginNewFeedEpoch()
            try tx.appendAudit(
                NewAuditEntry(atUnixMs: at, principalID: principalID, action: "store.restore", detail: detail)
            )
        }
    }

    /// Last backup taken, as the status shows it.
    package func lastBackup() throws -> (atUnixMs: Int64, sha256: String)? {
        try self.databasePool.read { db in
            LastBackup.parse(
                try String.fetchOne(db, sql: "SELECT value FROM meta WHERE name = ?", arguments: [LastBackup.name])
            )
        }
    }

    /// Records a backup taken (not a record: no audit coverage needed; the
    /// backup's own audit entry says the same).
    package func recordBackup(atUnixMs: Int64, sha256: String) throws {
        try self.databasePool.writeWithoutTransaction { db in
            try db.execute(sql: LastBackup.upsert, arguments: [LastBackup.value(atUnixMs: atUnixMs, sha256: sha256)])
        }
    }

    /// The database's size on disk: the file and its write-ahead log.
    package func databaseBytes() -> UInt64 {
        let path = self.databasePool.path
        return [path, path + "-wal"].reduce(0) { total, file in
            total + ((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)?.uint64Value ?? 0)
        }
    }
}

extension SQLiteStore {
    /// Closes the database (the store cannot be used afterwards).
    package func close() throws {
        try self.databasePool.close()
    }

    /// Moves everything in the write-ahead log into the database file, then
    /// closes it: the file alone holds every committed row.
    package func closeIntoOneFile() throws {
        do {
            _ = try self.databasePool.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
            try self.databasePool.close()
        } catch {
            throw self.failed(error)
        }
    }
}
