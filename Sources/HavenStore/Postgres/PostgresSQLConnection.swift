import Dispatch
import Foundation
import HavenProtocol
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// PostgreSQL through postgres-nio, as ``SQLTransaction`` uses it.
///
/// The transaction logic is synchronous (it is shared with SQLite, whose
/// calls are), so each statement waits for its result. That is only ever done
/// on threads of the store's own blocking pool or its writer queue, never on
/// an event loop or a task of the cooperative pool.
struct PostgresSQLConnection: SQLConnection {
    let connection: PostgresConnection
    let logger: Logger
    /// The connection's prepared statements (nil: each statement is parsed
    /// and planned anew).
    var statements: PostgresStatements? = nil
    /// What the statements may have left in the open transaction (the
    /// writer's; nil: not counted): see ``StatementEffects``.
    var effects: StatementEffects? = nil

    func execute(_ sql: String, _ arguments: [any SQLBindable]) throws {
        _ = try self.run(sql, arguments)
    }

    func rows(_ sql: String, _ arguments: [any SQLBindable]) throws -> [SQLRow] {
        let result = try self.run(sql, arguments)
        var rows: [SQLRow] = []
        rows.reserveCapacity(result.count)
        var names: [String]?
        for row in result {
            let columns = names ?? row.map(\.columnName)
            names = columns
            var values: [SQLValue] = []
            values.reserveCapacity(columns.count)
            for var cell in row {
                // postgres-nio asks for every result in binary, and says so for an
                // unnamed statement's columns, but a prepared statement's columns
                // keep the text format its description named before that choice.
                cell.format = .binary
                values.append(try Self.value(cell))
            }
            rows.append(SQLRow(names: columns, values: values))
        }
        return rows
    }

    /// Through a cursor of the transaction, a batch at a time: whole-table
    /// scans (a snapshot for a backup, a migration) never hold a table in
    /// memory, and no one statement runs long.
    func forEachRow(_ sql: String, _ arguments: [any SQLBindable], _ body: (SQLRow) throws -> Void) throws {
        let cursor = "haven_scan_\(Self.cursorIDs.wrappingAdd(1, ordering: .relaxed).oldValue)"
        try self.execute("DECLARE \(cursor) NO SCROLL CURSOR FOR \(sql)", arguments)
        do {
            while true {
                let batch = try self.rows("FETCH FORWARD \(Self.scanBatch) FROM \(cursor)", [])
                for row in batch { try body(row) }
                guard batch.count == Self.scanBatch else { break }
            }
        } catch {
            try? self.execute("CLOSE \(cursor)")
            throw error
        }
        try self.execute("CLOSE \(cursor)")
    }

    /// Rows a scan fetches at a time.
    static let scanBatch = 1000
    private static let cursorIDs = Atomic<Int>(0)

    /// Runs a statement and returns its command tag (`COMMIT`, `ROLLBACK`, …).
    func command(_ sql: String) throws -> String {
        try self.unnamed(sql, []).metadata.command
    }

    /// Runs a statement, counting in ``effects`` what it may leave in the transaction.
    private func run(_ sql: String, _ arguments: [any SQLBindable]) throws -> [PostgresRow] {
        guard let effects = self.effects else { return try self.perform(sql, arguments) }
        do {
            let rows = try self.perform(sql, arguments)
            if !StatementEffects.reads(sql) { effects.count += 1 }
            return rows
        } catch {
            // A failed statement aborts PostgreSQL's transaction, whatever it was.
            effects.count += 1
            throw error
        }
    }

    /// Runs a statement: through the connection's prepared statement for
    /// its text and argument types when it has a cache (prepared on first
    /// use), otherwise parsed and planned anew.
    private func perform(_ sql: String, _ arguments: [any SQLBindable]) throws -> [PostgresRow] {
        guard let statements = self.statements, PostgresStatements.preparable(sql, arguments.count) else {
            return try self.unnamed(sql, arguments).rows
        }
        let values = arguments.map(\.sqlValue)
        let key = PostgresStatements.key(sql, values)
        do {
            let prepared: PreparedQuery
            if let known = statements.statement(key) {
                prepared = known
            } else {
                guard statements.hasRoom else { return try self.unnamed(sql, arguments).rows }
                prepared = try self.wait(self.connection.prepare(query: PostgresStatements.typed(sql, values)))
                statements.add(prepared, for: key)
            }
            return try self.wait(prepared.execute(values.map(PostgresStatements.data)))
        } catch let error as PostgresError {
            // postgres-nio reports a prepared statement's failures in its older error type.
            switch error {
            case .server(let message):
                let state = message.fields[.sqlState] ?? ""
                if state == "0A000" || state == "26000" {
                    // A table changed under a prepared statement ("cached plan must
                    // not change result type": another instance migrated the schema),
                    // or the statement is gone. This transaction is lost; the next
                    // ones prepare their statements anew.
                    statements.removeAll()
                }
                throw PostgresServerError(sqlState: state, message: message.fields[.message] ?? "")
            case .connectionClosed, .protocol:
                self.connection.close().whenComplete { _ in }
                throw PostgresStatementError.connectionLost
            }
        } catch let error where error is ChannelError || error is IOError {
            // The connection failed (reported unwrapped on this path): as for an unnamed statement.
            self.connection.close().whenComplete { _ in }
            throw error
        }
    }

    /// Runs a statement parsed and planned for this run alone.
    private func unnamed(_ sql: String, _ arguments: [any SQLBindable]) throws -> PostgresQueryResult {
        var binds = PostgresBindings(capacity: arguments.count)
        for argument in arguments {
            switch argument.sqlValue {
            case .null: binds.appendNull()
            case .integer(let value): binds.append(value)
            case .real(let value): binds.append(value)
            case .text(let value): binds.append(value)
            case .blob(let value): binds.append(ByteBuffer(bytes: value))
            case .bool(let value): binds.append(value)
            }
        }
        let query = PostgresQuery(unsafeSQL: PostgresPlaceholders.numbered(sql), binds: binds)
        return try self.wait(self.connection.query(query, logger: self.logger))
    }

    /// Waits for a statement's outcome on the calling thread.
    private func wait<T: Sendable>(_ future: @autoclosure () -> EventLoopFuture<T>) throws -> T {
        guard !self.connection.isClosed else { throw PostgresStatementError.connectionLost }
        // Waits at most `statementTimeout`: a statement sent as the server
        // drops the connection must not hold the writer forever.
        let semaphore = DispatchSemaphore(value: 0)
        let outcome = Mutex<Result<T, any Error>?>(nil)
        future().whenComplete { result in
            outcome.withLock { $0 = result }
            semaphore.signal()
        }
        guard semaphore.wait(timeout: .now() + Self.statementTimeout) == .success,
            let result = outcome.withLock({ $0 })
        else {
            self.connection.close().whenComplete { _ in }
            throw PostgresStatementError.timedOut
        }
        do {
            return try result.get()
        } catch let error as PSQLError where error.code != .server {
            // The connection failed, not the statement: close it, so that
            // whatever follows fails at once and the store connects anew.
            self.connection.close().whenComplete { _ in }
            throw error
        }
    }

    /// How long a statement may take before its connection is given up.
    static let statementTimeout = DispatchTimeInterval.seconds(30)

    static func value(_ cell: PostgresCell) throws -> SQLValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .int2, .int4, .int8: return .integer(try cell.decode(Int64.self))
        case .bool: return .bool(try cell.decode(Bool.self))
        case .bytea:
            let buffer = try cell.decode(ByteBuffer.self)
            return .blob(Data(buffer.readableBytesView))
        case .float4, .float8: return .real(try cell.decode(Double.self))
        default: return .text(try cell.decode(String.self))
        }
    }
}

/// The shared SQL's `?` placeholders as PostgreSQL's `$1, $2, …`, each
/// statement's text rewritten once and kept.
enum PostgresPlaceholders {
    private static let cache = Mutex<[String: String]>([:])

    static func numbered(_ sql: String) -> String {
        if let cached = Self.cache.withLock({ $0[sql] }) { return cached }
        let rewritten = Self.rewrite(sql)
        Self.cache.withLock { cache in
            // Statements are the store's own fixed texts, plus a few shapes
            // built from filters: bounded, but kept bounded anyway.
            if cache.count > 4096 { cache.removeAll() }
            cache[sql] = rewritten
        }
        return rewritten
    }

    /// Renumbers `?` outside quoted text, each followed by its cast, if given one.
    static func rewrite(_ sql: String, casts: [String] = []) -> String {
        var result = ""
        result.reserveCapacity(sql.utf8.count + 16)
        var number = 0
        var quote: Character?
        for character in sql {
            if let open = quote {
                if character == open { quote = nil }
                result.append(character)
            } else if character == "'" || character == "\"" {
                quote = character
                result.append(character)
            } else if character == "?" {
                number += 1
                result += "$\(number)"
                if number <= casts.count { result += casts[number - 1] }
            } else {
                result.append(character)
            }
        }
        return result
    }
}

/// The statements prepared on one connection (the writer's, or one of the
/// read pool's), by their text and the types of their arguments.
///
/// A write runs a dozen statements, each a round trip; parsed and planned
/// anew each time, one cost about 45 µs more in PostgreSQL than prepared
/// (pgbench, extended against prepared). A statement is prepared with its
/// parameters' types spelled out (`$1::int8`, …: what the unnamed statement
/// declared for them), so the arguments bound later always match; a NULL
/// argument leaves its parameter's type to the statement, as before, and a
/// statement run with a NULL where it once had a value is prepared again
/// for that shape. Only single `SELECT`, `INSERT`, `UPDATE` and `DELETE`
/// statements of at most 64 arguments are prepared, and at most 256 of
/// them per connection; the rest run as before. They live as long as the
/// connection: a new connection starts with none. When a table changes under
/// them (0A000), the connection's are forgotten: the write fails UNAVAILABLE,
/// a read runs once more (``PostgresStore``).
final class PostgresStatements: Sendable {
    /// The connection they were prepared on (each of them refers to it too).
    let connection: PostgresConnection
    private let prepared = Mutex<[String: PreparedQuery]>([:])
    static let capacity = 256
    static let maxArguments = 64

    init(connection: PostgresConnection) {
        self.connection = connection
    }

    func statement(_ key: String) -> PreparedQuery? { self.prepared.withLock { $0[key] } }
    var hasRoom: Bool { self.prepared.withLock { $0.count < Self.capacity } }
    var count: Int { self.prepared.withLock { $0.count } }
    func add(_ statement: PreparedQuery, for key: String) { self.prepared.withLock { $0[key] = statement } }
    func removeAll() { self.prepared.withLock { $0.removeAll() } }

    static func preparable(_ sql: String, _ arguments: Int) -> Bool {
        guard arguments <= Self.maxArguments, !sql.contains(";") else { return false }
        let verb = sql.drop(while: \.isWhitespace).prefix(6).uppercased()
        return verb == "SELECT" || verb == "INSERT" || verb == "UPDATE" || verb == "DELETE"
    }

    /// The statement's text and its arguments' types.
    static func key(_ sql: String, _ values: [SQLValue]) -> String {
        var key = String(values.map(Self.typeCode))
        key.append("\u{0}")
        key.append(sql)
        return key
    }

    private static func typeCode(_ value: SQLValue) -> Character {
        switch value {
        case .null: "n"
        case .integer: "i"
        case .real: "r"
        case .text: "t"
        case .blob: "b"
        case .bool: "o"
        }
    }

    /// The statement with PostgreSQL's placeholders, each cast to its argument's type.
    static func typed(_ sql: String, _ values: [SQLValue]) -> String {
        PostgresPlaceholders.rewrite(sql, casts: values.map(Self.cast))
    }

    private static func cast(_ value: SQLValue) -> String {
        switch value {
        case .null: ""
        case .integer: "::int8"
        case .real: "::float8"
        case .text: "::text"
        case .blob: "::bytea"
        case .bool: "::bool"
        }
    }

    /// An argument as the prepared statement's parameter receives it.
    static func data(_ value: SQLValue) -> PostgresData {
        switch value {
        case .null: .null
        case .integer(let value): PostgresData(int64: value)
        case .real(let value): PostgresData(double: value)
        case .text(let value): PostgresData(string: value)
        case .blob(let value): PostgresData(bytes: value)
        case .bool(let value): PostgresData(bool: value)
        }
    }
}

/// A statement PostgreSQL refused: its SQLSTATE and message (for the log,
/// never for clients).
struct PostgresServerError: Error {
    let sqlState: String
    let message: String
}

/// A statement that did not reach the database, or got no answer in time.
enum PostgresStatementError: Error {
    case connectionLost
    case timedOut
}

/// A count of the statements that may have left something in the writer's
/// transaction (``GroupCommitConnection/changes``): every statement but a
/// `SELECT` that succeeded. PostgreSQL does not report what a statement
/// changed the way SQLite does, and any failed statement aborts its
/// transaction, so the count errs on the side of "changed": a write counted
/// as having changed something when it had not only costs its group a
/// second run of the writes before it. Used on the writer queue only.
final class StatementEffects: @unchecked Sendable {
    var count = 0

    /// Whether a statement only reads: a `SELECT` (Haven's statements call
    /// no function with effects from a `SELECT` inside a write's body).
    static func reads(_ sql: String) -> Bool {
        let start = sql.drop(while: \.isWhitespace)
        guard start.prefix(6).uppercased() == "SELECT" else { return false }
        return start.dropFirst(6).first?.isWhitespace ?? true
    }
}
