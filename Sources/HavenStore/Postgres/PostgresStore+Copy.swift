import Foundation
import HavenProtocol

extension PostgresStore {
    /// Every table of the schema, in the order a copy fills them.
    static let copiedTables = [
        "meta", "counter", "officeKey", "recordKey", "record", "caseEvent", "change", "idempotency", "account",
        "credential", "enrollment", "audit", "auditResource", "checkpoint",
    ]

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
                    for table in Self.copiedTables {
                        report.rows[table] = try Self.copyTable(table, from: sqlite, to: target)
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

    /// Copies one table's rows as stored; SQLite's 0/1 flags become BOOLEAN.
    private static func copyTable(
        _ table: String,
        from source: any SQLConnection,
        to target: PostgresSQLConnection
    ) throws -> Int {
        let types = Dictionary(
            try target.rows(
                """
                SELECT column_name, data_type FROM information_schema.columns
                WHERE table_schema = current_schema() AND table_name = ?
                """,
                [table.lowercased()]
            ).map { (try $0[0] as String, try $0[1] as String) },
            uniquingKeysWith: { first, _ in first }
        )
        // The migrations wrote meta rows of their own (the lineage, the timeline layout): the copy's win.
        let conflict = table == "meta" ? " ON CONFLICT (name) DO UPDATE SET value = excluded.value" : ""
        var count = 0
        try source.forEachRow("SELECT * FROM \(table)", []) { row in
            let values: [any SQLBindable] = zip(row.names, row.values).map { name, value in
                if types[name.lowercased()] == "boolean", case .integer(let flag) = value {
                    return SQLValue.bool(flag != 0)
                }
                return value
            }
            try target.execute(
                "INSERT INTO \(table) (\(row.names.joined(separator: ", "))) VALUES (\(SQLTransaction.placeholders(values.count)))\(conflict)",
                values
            )
            count += 1
        }
        return count
    }
}
