import Foundation
import GRDB

/// A row of the `record` table: index columns and the serialized record.
struct RecordRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "record"

    enum Columns {
        static let kind = Column(CodingKeys.kind)
        static let id = Column(CodingKeys.id)
        static let alias = Column(CodingKeys.alias)
        static let officeCode = Column(CodingKeys.officeCode)
        static let partnerID = Column(CodingKeys.partnerID)
        static let subjectID = Column(CodingKeys.subjectID)
        static let status = Column(CodingKeys.status)
        static let category = Column(CodingKeys.category)
        static let day = Column(CodingKeys.day)
        static let createdAt = Column(CodingKeys.createdAt)
        static let updatedAt = Column(CodingKeys.updatedAt)
        static let flagged = Column(CodingKeys.flagged)
        static let version = Column(CodingKeys.version)
        static let body = Column(CodingKeys.body)
        static let secret = Column(CodingKeys.secret)
        static let sealed = Column(CodingKeys.sealed)
    }

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

    /// The columns' values, in ``columns``' order.
    private var values: [(any DatabaseValueConvertible)?] {
        [
            self.kind, self.id, self.alias, self.officeCode, self.partnerID, self.subjectID, self.status,
            self.category, self.day, self.createdAt, self.updatedAt, self.flagged, self.version, self.body,
            self.secret, self.sealed,
        ]
    }

    /// Inserts the row through a statement prepared once per connection.
    func insert(into db: Database) throws {
        try db.cachedStatement(
            sql:
                "INSERT INTO record (\(Self.columns.joined(separator: ", "))) VALUES (\(Self.columns.map { _ in "?" }.joined(separator: ", ")))"
        ).execute(arguments: StatementArguments(self.values))
    }

    /// Replaces the row of the same kind and id, through a statement prepared once per connection.
    func update(in db: Database) throws {
        let assignments = Self.columns.dropFirst(2).map { "\($0) = ?" }.joined(separator: ", ")
        let arguments = StatementArguments(Array(self.values.dropFirst(2)) + [self.kind, self.id])
        try db.cachedStatement(sql: "UPDATE record SET \(assignments) WHERE kind = ? AND id = ?").execute(
            arguments: arguments
        )
    }
}
