/// Copying a store's tables row for row between two databases of the same
/// schema: a SQLite deployment into PostgreSQL (`haven-admin storage copy`,
/// a restore), and a PostgreSQL snapshot into a SQLite file (a backup).
enum SQLCopy {
    /// Every table of the schema, in the order a copy fills them.
    static let tables = [
        "meta", "counter", "officeKey", "recordKey", "record", "caseEvent", "survivorService", "accusedStatus",
        "reportFact", "change", "idempotency", "account", "credential", "enrollment", "audit", "auditResource",
        "checkpoint",
    ]

    /// Copies one table's rows as stored, returning how many, in multi-row
    /// `INSERT`s (a round trip per few hundred rows, not per row, to
    /// PostgreSQL). The `meta` rows the target's migrations wrote (the
    /// lineage, the timeline layout) give way to the source's.
    ///
    /// - Parameter booleanColumns: The target's BOOLEAN columns (lowercase),
    ///   into which SQLite's 0/1 flags are written as booleans.
    static func copy(
        _ table: String,
        from source: any SQLConnection,
        to target: any SQLConnection,
        booleanColumns: Set<String> = []
    ) throws -> Int {
        let conflict = table == "meta" ? " ON CONFLICT (name) DO UPDATE SET value = excluded.value" : ""
        var count = 0
        var names: [String] = []
        var pending: [any SQLBindable] = []
        var pendingRows = 0
        func flush() throws {
            guard pendingRows > 0 else { return }
            let row = "(\(SQLTransaction.placeholders(names.count)))"
            try target.execute(
                "INSERT INTO \(table) (\(names.joined(separator: ", "))) VALUES "
                    + Array(repeating: row, count: pendingRows).joined(separator: ", ") + conflict,
                pending
            )
            pending.removeAll(keepingCapacity: true)
            pendingRows = 0
        }
        try source.forEachRow("SELECT * FROM \(table)", []) { row in
            if names.isEmpty { names = row.names }
            for (name, value) in zip(row.names, row.values) {
                if case .integer(let flag) = value, booleanColumns.contains(name.lowercased()) {
                    pending.append(SQLValue.bool(flag != 0))
                } else {
                    pending.append(value)
                }
            }
            pendingRows += 1
            count += 1
            // At most 500 rows and 30,000 arguments a statement (SQLite binds
            // up to 32,766, PostgreSQL up to 65,535).
            if pendingRows >= min(500, Self.maxArguments / max(1, names.count)) { try flush() }
        }
        try flush()
        return count
    }

    static let maxArguments = 30_000
}
