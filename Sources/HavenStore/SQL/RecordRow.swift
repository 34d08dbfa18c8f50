import Foundation

/// A row of the `record` table: index columns and the serialized record.
struct RecordRow {
    var kind: String
    var id: String
    var alias: String?
    var officeCode: String?
    var partnerID: String?
    var subjectID: String?
    var status: Int
    var category: Int
    var day: String?
    var createdAt: Int64
    var updatedAt: Int64
    var flagged: Bool
    var version: Int64
    var body: Data
    /// The identity, sealed (survivors).
    var secret: Data?
    /// The free-text fields taken out of `body`, sealed (see ``SealedFields``).
    var sealed: Data?
}

extension RecordRow {
    private static let columns = [
        "kind", "id", "alias", "officeCode", "partnerID", "subjectID", "status", "category", "day", "createdAt",
        "updatedAt", "flagged", "version", "body", "secret", "sealed",
    ]

    /// `SELECT` of every column, in the order ``init(_:)`` reads them.
    static let select = "SELECT \(columns.joined(separator: ", ")) FROM record"

    /// Reads a row selected by ``select``.
    init(_ row: SQLRow) throws {
        self.init(
            kind: try row[0],
            id: try row[1],
            alias: try row[2],
            officeCode: try row[3],
            partnerID: try row[4],
            subjectID: try row[5],
            status: try row[6],
            category: try row[7],
            day: try row[8],
            createdAt: try row[9],
            updatedAt: try row[10],
            flagged: try row[11],
            version: try row[12],
            body: try row[13],
            secret: try row[14],
            sealed: try row[15]
        )
    }

    /// The columns' values, in ``columns``' order.
    private var values: [any SQLBindable] {
        [
            self.kind, self.id, self.alias, self.officeCode, self.partnerID, self.subjectID, self.status,
            self.category, self.day, self.createdAt, self.updatedAt, self.flagged, self.version, self.body,
            self.secret, self.sealed,
        ]
    }

    private static let insertSQL =
        "INSERT INTO record (\(columns.joined(separator: ", "))) VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))"
    private static let updateSQL =
        "UPDATE record SET \(columns.dropFirst(2).map { "\($0) = ?" }.joined(separator: ", ")) WHERE kind = ? AND id = ?"

    /// Inserts the row.
    func insert(into sql: any SQLConnection) throws {
        try sql.execute(Self.insertSQL, self.values)
    }

    /// Replaces the row of the same kind and id.
    func update(in sql: any SQLConnection) throws {
        try sql.execute(Self.updateSQL, Array(self.values.dropFirst(2)) + [self.kind, self.id])
    }

    /// Replaces the row of the same kind and id, whose indexed columns now
    /// hold `stored`, setting of those only the ones that change. A database
    /// rewrites the entries of every index on a column an `UPDATE` sets,
    /// changed or not: for a case's new event that was five index entries
    /// deleted and inserted again, four of them unchanged (about half the
    /// statement's time on SQLite, and their pages written to the log).
    func update(in sql: any SQLConnection, replacing stored: Indexed) throws {
        let indexed = self.indexed
        var mask = 0
        var arguments: [any SQLBindable] = []
        arguments.reserveCapacity(16)
        for (bit, (new, old)) in zip(indexed.values, stored.values).enumerated() where new != old {
            mask |= 1 << bit
            arguments.append(new)
        }
        arguments += [
            self.status, self.category, self.day, self.flagged, self.version, self.body, self.secret, self.sealed,
            self.kind, self.id,
        ]
        try sql.execute(Self.narrowUpdateSQL[mask], arguments)
    }

    /// The columns of `record` that its indexes hold, besides its key.
    struct Indexed: Equatable {
        var alias: String?
        var officeCode: String?
        var partnerID: String?
        var subjectID: String?
        var createdAt: Int64
        var updatedAt: Int64

        static let columns = ["alias", "officeCode", "partnerID", "subjectID", "createdAt", "updatedAt"]

        /// The values, in ``columns``' order.
        var values: [SQLValue] {
            [
                self.alias.sqlValue, self.officeCode.sqlValue, self.partnerID.sqlValue, self.subjectID.sqlValue,
                self.createdAt.sqlValue, self.updatedAt.sqlValue,
            ]
        }
    }

    /// The indexed columns as this row holds them.
    var indexed: Indexed {
        Indexed(
            alias: self.alias,
            officeCode: self.officeCode,
            partnerID: self.partnerID,
            subjectID: self.subjectID,
            createdAt: self.createdAt,
            updatedAt: self.updatedAt
        )
    }

    /// The `UPDATE` setting the indexed columns in a mask (bit *n* for
    /// ``Indexed/columns``[*n*]), then the others.
    private static let narrowUpdateSQL: [String] = (0..<(1 << Indexed.columns.count)).map { mask in
        let indexed = Indexed.columns.enumerated().filter { mask & (1 << $0.offset) != 0 }.map(\.element)
        let others = ["status", "category", "day", "flagged", "version", "body", "secret", "sealed"]
        return
            "UPDATE record SET \((indexed + others).map { "\($0) = ?" }.joined(separator: ", ")) WHERE kind = ? AND id = ?"
    }
}
