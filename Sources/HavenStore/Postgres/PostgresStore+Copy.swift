import Foundation
import HavenProtocol

extension PostgresStore {
    /// What ``copy(from:principalID:atUnixMs:)`` copied: rows per table.
    package struct CopyReport: Sendable {
        package var rows: [String: Int] = [:]
        package var total: Int { self.rows.values.reduce(0, +) }
    }

    /// Copies a SQLite store (a deployment's `haven.sqlite`, its havend
    /// stopped) into this store's database, which must be new: every row of
    /// every table as stored — records and notes still sealed under the same
    /// keys, the change log with its sequences and lineage (feed cursors stay
    /// valid), the audit trail with its hashes — in one transaction under the
    /// write lock. It ends with an audit entry `store.copy` by `principalID`
    /// that chains onto the copied trail, so the chain verifies across the move.
    ///
    /// - Throws: ``HavenError`` FAILED_PRECONDITION when the database already
    ///   holds records, accounts or audit entries (nothing is written).
    package func copy(from source: SQLiteStore, principalID: String, atUnixMs: Int64) async throws -> CopyReport {
        let keys = self.keys
        do {
            return try await self.onWriter { target in
                for table in ["record", "account", "audit"] {
                    guard try target.value(Int64.self, "SELECT COUNT(*) FROM \(table)") == 0 else {
                        throw HavenError(
                            code: .failedPrecondition,
                            message:
                                "the PostgreSQL database already holds \(table) rows: copy only into a new database"
                        )
                    }
                }
                var report = CopyReport()
                try source.readSQL { sqlite in
                    for table in SQLCopy.tables {
                        report.rows[table] = try SQLCopy.copy(
                            table,
                            from: sqlite,
                            to: target,
                            booleanColumns: try Self.booleanColumns(of: table, in: target)
                        )
                    }
                }
                // The change log's identity continues after the copied sequences.
                try target.execute(
                    """
                    SELECT setval(pg_get_serial_sequence('change', 'sequence'), COALESCE(MAX(sequence), 0) + 1, false)
                    FROM change
                    """
                )
                try SQLTransaction(target, keys: keys).appendAudit(
                    NewAuditEntry(
                        atUnixMs: atUnixMs,
                        principalID: principalID,
                        action: "store.copy",
                        detail: "copied \(report.total) rows from the SQLite database into PostgreSQL"
                    )
                )
                return report
            }
        } catch {
            throw self.failed(error)
        }
    }

    /// The BOOLEAN columns of one of the schema's tables (SQLite keeps them as 0/1).
    private static func booleanColumns(of table: String, in target: PostgresSQLConnection) throws -> Set<String> {
        Set(
            try target.values(
                String.self,
                """
                SELECT column_name FROM information_schema.columns
                WHERE table_schema = current_schema() AND table_name = ? AND data_type = 'boolean'
                """,
                [table.lowercased()]
            )
        )
    }

    // MARK: Backups

    /// Writes a consistent copy of the whole database to a new SQLite file at
    /// `path`, in the embedded store's schema: every table read in one
    /// `REPEATABLE READ` snapshot on a connection of the read pool, while
    /// writes go on. The backup archive carries it as it carries a SQLite
    /// deployment's snapshot, so one backup format, one restore and one
    /// verification serve both stores; records and notes stay sealed under
    /// the same keys.
    package func snapshot(to path: String) async throws -> SnapshotInfo {
        let keys = self.keys
        do {
            let copy = try SQLiteStore(path: path, keys: keys, logger: self.logger)
            do {
                try await self.readSQL { source in
                    try copy.writeSQL { target in
                        for table in SQLCopy.tables { _ = try SQLCopy.copy(table, from: source, to: target) }
                    }
                }
            } catch {
                try? copy.close()
                throw error
            }
            // One file: the archive carries haven.sqlite, not its write-ahead log.
            try copy.closeIntoOneFile()
        } catch {
            throw self.failed(error)
        }
        return try SQLiteStore.auditHead(ofCopy: path)
    }

    /// The last backup taken, as the status shows it (any instance's).
    package func lastBackup() async throws -> (atUnixMs: Int64, sha256: String)? {
        try await self.readSQL { sql in
            LastBackup.parse(try sql.value(String.self, "SELECT value FROM meta WHERE name = ?", [LastBackup.name]))
        }
    }

    /// Records a backup taken (not a record; its audit entry says the same).
    package func recordBackup(atUnixMs: Int64, sha256: String) async throws {
        do {
            try await self.onWriter { sql in
                try sql.execute(LastBackup.upsert, [LastBackup.value(atUnixMs: atUnixMs, sha256: sha256)])
            }
        } catch {
            throw self.failed(error)
        }
    }

    /// The database's size as PostgreSQL counts it (`pg_database_size`).
    package func databaseBytes() async -> UInt64 {
        let bytes = try? await self.readSQL { sql in
            try sql.value(Int64.self, "SELECT pg_database_size(current_database())")
        }
        return UInt64(max(0, (bytes ?? nil) ?? 0))
    }
}
