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

    func execute(_ sql: String, _ arguments: [any SQLBindable]) throws {
        _ = try self.run(sql, arguments)
    }

    func rows(_ sql: String, _ arguments: [any SQLBindable]) throws -> [SQLRow] {
        let result = try self.run(sql, arguments)
        var rows: [SQLRow] = []
        var names: [String]?
        for row in result {
            let columns = names ?? row.map(\.columnName)
            names = columns
            var values: [SQLValue] = []
            values.reserveCapacity(columns.count)
            for cell in row { values.append(try Self.value(cell)) }
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
        try self.run(sql, []).metadata.command
    }

    private func run(_ sql: String, _ arguments: [any SQLBindable]) throws -> PostgresQueryResult {
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
        guard !self.connection.isClosed else { throw PostgresStatementError.connectionLost }
        // Waits at most `statementTimeout`: a statement sent as the server
        // drops the connection must not hold the writer forever.
        let semaphore = DispatchSemaphore(value: 0)
        let outcome = Mutex<Result<PostgresQueryResult, any Error>?>(nil)
        self.connection.query(query, logger: self.logger).whenComplete { result in
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

    /// Renumbers `?` outside quoted text.
    static func rewrite(_ sql: String) -> String {
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
            } else {
                result.append(character)
            }
        }
        return result
    }
}

/// A statement that did not reach the database, or got no answer in time.
enum PostgresStatementError: Error {
    case connectionLost
    case timedOut
}
