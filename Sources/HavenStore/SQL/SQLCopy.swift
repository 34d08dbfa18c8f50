/// Copying a store's tables row for row between two databases of the same
/// schema: a SQLite deployment into PostgreSQL (`haven-admin storage copy`,
/// a restore), and a PostgreSQL snapshot into a SQLite file (a backup).
enum SQLCopy {
    /// Every table of the schema, in the order a copy fills them.
    static let tables = [
        "meta", "counter", "officeKey", "recordKey", "record", "caseEvent", "change", "idempotency", "account",
        "credential", "enrollment", "audit", "auditResource", "checkpoint",
    ]

    /// Copies one table's rows as stored, returning how many. The `meta` rows
    /// the target's migrations wrote (the lineage, the timeline layout) give
    /// way to the source's.
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
        var insert: String?
        try source.forEachRow("SELECT * FROM \(table)", []) { row in
            let values: [any SQLBindable] = zip(row.names, row.values).map { name, value in
                if case .integer(let flag) = value, booleanColumns.contains(name.lowercased()) {
                    return SQLValue.bool(flag != 0)
                }
                return value
            }
            let statement =
                insert
                ?? "INSERT INTO \(table) (\(row.names.joined(separator: ", "))) VALUES (\(SQLTransaction.placeholders(values.count)))\(conflict)"
            insert = statement
            try target.execute(statement, values)
            count += 1
        }
        return count
    }
}
