import Foundation
import GRDB
import GRDBSQLite
import HavenProtocol
import Testing

@testable import HavenStore

/// The SQLite connection of the shared SQL layer binds arguments and reads
/// columns with SQLite's own functions: it must store and read exactly what
/// GRDB's own binding does, fail as GRDB fails, and leave no argument bound
/// in its statement cache.
@Suite("GRDBConnection")
struct GRDBConnectionTests {
    static let schema = "CREATE TABLE t (id INTEGER PRIMARY KEY, v, UNIQUE (v))"

    /// Values of every kind the stores bind, edge cases included.
    static let values: [SQLValue] = [
        .null,
        .integer(0), .integer(-1), .integer(.max), .integer(.min),
        .real(0.5), .real(-1e300),
        .text(""), .text("Kolkata — কলকাতা, Maynila ✓"), .text(String(repeating: "x", count: 100_000)),
        .blob(Data()), .blob(Data([0, 1, 0, 255])), .blob(Data((0..<70_000).map { UInt8(truncatingIfNeeded: $0) })),
        .bool(true), .bool(false),
    ]

    /// How GRDB itself binds a value (what the store did before).
    static func grdbValue(_ value: SQLValue) -> (any DatabaseValueConvertible)? {
        switch value {
        case .null: nil
        case .integer(let integer): integer
        case .real(let real): real
        case .text(let text): text
        case .blob(let data): data
        case .bool(let bool): bool
        }
    }

    @Test("stores and reads every kind of value as GRDB's own binding and rows do")
    func sameAsGRDB() throws {
        let queue = try DatabaseQueue()
        try queue.write { db in
            try db.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v)")
            let connection = GRDBConnection(db: db)
            for (index, value) in Self.values.enumerated() {
                try connection.execute("INSERT INTO t (id, v) VALUES (?, ?)", [Int64(2 * index), value])
                try db.execute(
                    sql: "INSERT INTO t (id, v) VALUES (?, ?)",
                    arguments: [Int64(2 * index + 1), Self.grdbValue(value)]
                )
            }
            let rows = try connection.rows("SELECT id, v, typeof(v) FROM t ORDER BY id")
            #expect(rows.count == 2 * Self.values.count)
            for (index, value) in Self.values.enumerated() {
                let ours = rows[2 * index]
                let theirs = rows[2 * index + 1]
                #expect(ours.names == ["id", "v", "typeof(v)"])
                // Bound the same way: the same storage class and value.
                #expect(ours.values[1] == theirs.values[1], "\(value)")
                #expect(ours.values[2] == theirs.values[2], "\(value)")
                // Read the same way as GRDB reads it.
                let row = try #require(
                    try Row.fetchOne(db, sql: "SELECT v FROM t WHERE id = ?", arguments: [2 * index])
                )
                let grdb: DatabaseValue = row[0]
                switch grdb.storage {
                case .null: #expect(ours.values[1] == .null)
                case .int64(let integer): #expect(ours.values[1] == .integer(integer))
                case .double(let real): #expect(ours.values[1] == .real(real))
                case .string(let text): #expect(ours.values[1] == .text(text))
                case .blob(let data): #expect(ours.values[1] == .blob(data))
                }
            }
            // What each kind reads back as.
            #expect(rows[2 * 8].values[1] == .text("Kolkata — কলকাতা, Maynila ✓"))
            #expect(rows[2 * 11].values[1] == .blob(Data([0, 1, 0, 255])))
            #expect(rows[2 * 13].values[1] == .integer(1))
            #expect(rows[2 * 3].values[1] == .integer(.max))
        }
    }

    /// An in-memory database with the table of ``schema``, and the connection over it.
    func withTable(_ body: (Database, GRDBConnection) throws -> Void) throws {
        try DatabaseQueue().write { db in
            try db.execute(sql: Self.schema)
            try body(db, GRDBConnection(db: db))
        }
    }

    @Test("refuses a wrong number of arguments, reports a constraint as GRDB does, and runs the statement again after")
    func failures() throws {
        try self.withTable { _, connection in
            let insert = "INSERT INTO t (v) VALUES (?)"
            let miscount = #expect(throws: DatabaseError.self) { try connection.execute(insert, [1, 2] as [Int64]) }
            #expect(miscount?.resultCode == .SQLITE_MISUSE)
            try connection.execute(insert, ["fictional"])
            let duplicate = #expect(throws: DatabaseError.self) { try connection.execute(insert, ["fictional"]) }
            #expect(duplicate?.resultCode == .SQLITE_CONSTRAINT)
            #expect(duplicate?.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE)
            // The cached statement failed last; it runs again.
            try connection.execute(insert, ["another"])
            #expect(
                try connection.rows("SELECT v FROM t ORDER BY id").map(\.values) == [
                    [.text("fictional")], [.text("another")],
                ]
            )
        }
    }

    @Test("insertOne returns the rowid SQLite assigned, and refuses a statement that did not insert exactly one row")
    func insertOne() throws {
        try self.withTable { _, connection in
            let insert = "INSERT INTO t (v) VALUES (?)"
            let first = try connection.insertOne(insert, ["fictional a"], assigningKey: "id")
            let second = try connection.insertOne(insert, ["fictional b"], assigningKey: "id")
            #expect(second == first + 1)
            #expect(try connection.value(Int64.self, "SELECT id FROM t WHERE v = ?", ["fictional b"]) == second)
            // A key given explicitly is the key returned.
            #expect(
                try connection.insertOne("INSERT INTO t (id, v) VALUES (?, ?)", [Int64(40), "c"], assigningKey: "id")
                    == 40
            )
            // Two rows, or none, is not one: the rowid left would be another's.
            let two = #expect(throws: HavenError.self) {
                try connection.insertOne(
                    "INSERT INTO t (v) SELECT v || '!' FROM t WHERE id <= ?",
                    [second],
                    assigningKey: "id"
                )
            }
            #expect(two?.code == .internal)
            let none = #expect(throws: HavenError.self) {
                try connection.insertOne("INSERT OR IGNORE INTO t (v) VALUES (?)", ["fictional a"], assigningKey: "id")
            }
            #expect(none?.code == .internal)
            // A failed insert fails as GRDB reports it.
            let duplicate = #expect(throws: DatabaseError.self) {
                try connection.insertOne(insert, ["fictional a"], assigningKey: "id")
            }
            #expect(duplicate?.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE)
        }
    }

    /// The statement's SQL with its current bindings written in.
    static func expanded(_ statement: Statement) throws -> String {
        let text = try #require(sqlite3_expanded_sql(statement.sqliteStatement))
        defer { sqlite3_free(text) }
        return String(cString: text)
    }

    @Test(
        "leaves no argument bound in the statement cache after a run or a query; a statement whose run failed leaves the cache"
    )
    func bindingsCleared() throws {
        try self.withTable { db, connection in
            let insert = "INSERT INTO t (v) VALUES (?)"
            try connection.execute(insert, ["fictional secret"])
            let cached = try db.cachedStatement(sql: insert)
            #expect(try Self.expanded(cached) == "INSERT INTO t (v) VALUES (NULL)")
            // GRDB evicts a statement whose step failed (SQLite cannot reset
            // it cleanly): what the cache then holds is a new statement, and
            // the failed one goes with its bindings.
            _ = #expect(throws: DatabaseError.self) { try connection.execute(insert, ["fictional secret"]) }
            #expect(try db.cachedStatement(sql: insert) !== cached)
            let select = "SELECT v FROM t WHERE v = ?"
            #expect(try connection.rows(select, ["fictional secret"]).count == 1)
            #expect(try Self.expanded(try db.cachedStatement(sql: select)) == "SELECT v FROM t WHERE v = NULL")
        }
    }
}
