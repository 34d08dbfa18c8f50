import Foundation
import GRDB

/// SQLite through GRDB, as ``SQLTransaction`` uses it. Every statement goes
/// through GRDB's per-connection statement cache: preparing one costs more
/// than running it.
struct GRDBConnection: SQLConnection {
    let db: Database

    func execute(_ sql: String, _ arguments: [any SQLBindable]) throws {
        try self.db.cachedStatement(sql: sql).execute(arguments: Self.arguments(arguments))
    }

    func rows(_ sql: String, _ arguments: [any SQLBindable]) throws -> [SQLRow] {
        var rows: [SQLRow] = []
        try self.forEachRow(sql, arguments) { rows.append($0) }
        return rows
    }

    func forEachRow(_ sql: String, _ arguments: [any SQLBindable], _ body: (SQLRow) throws -> Void) throws {
        let statement = try self.db.cachedStatement(sql: sql)
        let names = statement.columnNames
        let cursor = try Row.fetchCursor(statement, arguments: Self.arguments(arguments))
        while let row = try cursor.next() {
            var values: [SQLValue] = []
            values.reserveCapacity(names.count)
            for index in 0..<names.count {
                values.append(Self.value(row[index] as DatabaseValue))
            }
            try body(SQLRow(names: names, values: values))
        }
    }

    /// The arguments as GRDB binds them. Built through GRDB's initializer
    /// for optional existentials: its initializer for a sequence of
    /// `DatabaseValue`s maps them through a key path, which is instantiated
    /// on every call (`swift_getKeyPath`: about 2.5 % of a write's profile).
    static func arguments(_ arguments: [any SQLBindable]) -> StatementArguments {
        StatementArguments(
            arguments.map { argument -> (any DatabaseValueConvertible)? in
                switch argument.sqlValue {
                case .null: nil
                case .integer(let value): value.databaseValue
                case .real(let value): value.databaseValue
                case .text(let value): value.databaseValue
                case .blob(let value): value.databaseValue
                case .bool(let value): value.databaseValue
                }
            }
        )
    }

    static func value(_ value: DatabaseValue) -> SQLValue {
        switch value.storage {
        case .null: .null
        case .int64(let integer): .integer(integer)
        case .double(let double): .real(double)
        case .string(let string): .text(string)
        case .blob(let data): .blob(data)
        }
    }
}

extension SQLTransaction {
    /// The GRDB database under a transaction of the SQLite store (for its
    /// own pragmas and tests; nil in another store).
    package var sqliteDatabase: Database? { (self.sql as? GRDBConnection)?.db }
}

extension SQLiteStore {
    /// Runs `body` in a read snapshot on the calling thread, through the
    /// shared SQL (copying the store elsewhere).
    func readSQL<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        do {
            return try self.databasePool.read { db in try body(GRDBConnection(db: db)) }
        } catch {
            throw self.failed(error)
        }
    }

    /// Runs `body` in one write transaction on the calling thread, through
    /// the shared SQL, outside group commit and the audit trail: only for
    /// filling a new database (a snapshot of PostgreSQL for a backup).
    func writeSQL<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        do {
            return try self.databasePool.write { db in try body(GRDBConnection(db: db)) }
        } catch {
            throw self.failed(error)
        }
    }
}
