import Foundation
import GRDB
import GRDBSQLite
import HavenProtocol

/// SQLite through GRDB, as ``SQLTransaction`` uses it. Every statement goes
/// through GRDB's per-connection statement cache (preparing one costs more
/// than running it) and is stepped by GRDB, which turns a failure into a
/// `DatabaseError` and keeps its view of the transaction; the arguments are
/// bound, and the columns read, with SQLite's own functions, without the
/// `DatabaseValue`s and `Row`s between them and ``SQLValue`` (a write
/// binds and reads about fifteen statements on the one writer: that
/// conversion was a tenth of its time).
struct GRDBConnection: SQLConnection {
    let db: Database

    func execute(_ sql: String, _ arguments: [any SQLBindable]) throws {
        let run = try BoundStatement(try self.db.cachedStatement(sql: sql), arguments, readsRows: false)
        while try run.next() != nil {}
    }

    func rows(_ sql: String, _ arguments: [any SQLBindable]) throws -> [SQLRow] {
        var rows: [SQLRow] = []
        try self.forEachRow(sql, arguments) { rows.append($0) }
        return rows
    }

    /// The row's rowid, which an `INTEGER PRIMARY KEY` is, as SQLite keeps it
    /// for the connection (`sqlite3_last_insert_rowid`), checked to be this
    /// statement's by the one row it changed. Not `RETURNING`: SQLite keeps
    /// the returned row in a temporary table of its own, and the change log's
    /// insert with it took 18.5 µs inside SQLite, against 7–9 µs for the
    /// write's other inserts (BENCHMARKS.md).
    func insertOne(_ sql: String, _ arguments: [any SQLBindable], assigningKey key: String) throws -> Int64 {
        let before = self.db.totalChangesCount
        try self.execute(sql, arguments)
        let changed = self.db.totalChangesCount - before
        guard changed == 1 else {
            throw HavenError(code: .internal, message: "an insert of one row changed \(changed)")
        }
        return self.db.lastInsertedRowID
    }

    func forEachRow(_ sql: String, _ arguments: [any SQLBindable], _ body: (SQLRow) throws -> Void) throws {
        let statement = try self.db.cachedStatement(sql: sql)
        let names = statement.columnNames
        let run = try BoundStatement(statement, arguments, readsRows: true)
        while let values = try run.next() {
            try body(SQLRow(names: names, values: values))
        }
    }
}

/// One run of a cached statement: bound with SQLite's functions when made,
/// stepped by GRDB (`DatabaseCursor`), each row read into ``SQLValue``s, and
/// reset with its bindings cleared when done, so that the cache holds no
/// argument (no sealed text or key outlives its statement's run).
private final class BoundStatement: DatabaseCursor {
    typealias Element = [SQLValue]

    let _statement: Statement
    var _isDone = false
    private let readsRows: Bool
    private let columns: Int32

    /// Binds `arguments` to `statement`'s parameters, which must number as many.
    init(_ statement: Statement, _ arguments: [any SQLBindable], readsRows: Bool) throws {
        self._statement = statement
        self.readsRows = readsRows
        let handle = statement.sqliteStatement
        self.columns = readsRows ? sqlite3_column_count(handle) : 0
        // A reset answers with the last run's failure, if any (GRDB evicts a
        // statement whose step failed, so that is rare here); it resets all
        // the same, and that failure was reported when it happened.
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        let expected = Int(sqlite3_bind_parameter_count(handle))
        guard expected == arguments.count else {
            throw DatabaseError(
                resultCode: .SQLITE_MISUSE,
                message: "wrong number of statement arguments: \(arguments.count), not \(expected)",
                sql: statement.sql
            )
        }
        for (offset, argument) in arguments.enumerated() {
            let index = Int32(offset + 1)
            let code: Int32
            switch argument.sqlValue {
            case .null: code = sqlite3_bind_null(handle, index)
            case .integer(let value): code = sqlite3_bind_int64(handle, index, value)
            case .bool(let value): code = sqlite3_bind_int64(handle, index, value ? 1 : 0)
            case .real(let value): code = sqlite3_bind_double(handle, index, value)
            case .text(let value): code = Self.bind(value, to: handle, at: index)
            case .blob(let value):
                code = value.withUnsafeBytes {
                    sqlite3_bind_blob(handle, index, $0.baseAddress, Int32($0.count), transient)
                }
            }
            guard code == SQLITE_OK else {
                throw DatabaseError(
                    resultCode: ResultCode(rawValue: code),
                    message: String(cString: sqlite3_errmsg(sqlite3_db_handle(handle))),
                    sql: statement.sql
                )
            }
        }
    }

    /// Binds `text` by its UTF-8 bytes and their count, without the
    /// NUL-terminated copy that passing a `String` as a C string makes.
    private static func bind(_ text: String, to handle: SQLiteStatement, at index: Int32) -> Int32 {
        var text = text
        return text.withUTF8 { bytes in
            // An empty buffer may have no address, and a NULL pointer would bind SQL NULL.
            guard let base = bytes.baseAddress, !bytes.isEmpty else {
                return sqlite3_bind_text(handle, index, "", 0, transient)
            }
            return base.withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                sqlite3_bind_text(handle, index, $0, Int32(bytes.count), transient)
            }
        }
    }

    deinit {
        let handle = self._statement.sqliteStatement
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    func _element(sqliteStatement handle: SQLiteStatement) throws -> [SQLValue] {
        guard self.readsRows else { return [] }
        var values: [SQLValue] = []
        values.reserveCapacity(Int(self.columns))
        for column in 0..<self.columns {
            switch sqlite3_column_type(handle, column) {
            case SQLITE_INTEGER:
                values.append(.integer(sqlite3_column_int64(handle, column)))
            case SQLITE_FLOAT:
                values.append(.real(sqlite3_column_double(handle, column)))
            case SQLITE_TEXT:
                let bytes = sqlite3_column_text(handle, column)
                let count = Int(sqlite3_column_bytes(handle, column))
                values.append(
                    .text(
                        bytes.map { String(decoding: UnsafeBufferPointer(start: $0, count: count), as: UTF8.self) }
                            ?? ""
                    )
                )
            case SQLITE_BLOB:
                let bytes = sqlite3_column_blob(handle, column)
                let count = Int(sqlite3_column_bytes(handle, column))
                values.append(.blob(bytes.map { Data(bytes: $0, count: count) } ?? Data()))
            default:
                values.append(.null)
            }
        }
        return values
    }
}

/// SQLite copies a bound text or blob before the bind returns.
private let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

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
