import Foundation
import HavenProtocol

/// A value bound to, or read from, a SQL statement: the types both stores
/// keep (SQLite's storage classes; PostgreSQL's BIGINT, TEXT, BYTEA, BOOLEAN).
package enum SQLValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob(Data)
    case bool(Bool)
}

/// What can be bound to a statement's `?`.
package protocol SQLBindable {
    var sqlValue: SQLValue { get }
}

/// What a column can be read as.
package protocol SQLDecodable {
    /// The value, or nil when the column holds another type.
    static func decode(_ value: SQLValue) -> Self?
}

/// One connection of a SQL store, inside a transaction that its store began.
///
/// The reads and writes of ``SQLTransaction`` are written once against this,
/// in the SQL both SQLite and PostgreSQL accept: `?` placeholders (an adapter
/// renumbers them where its database wants `$1`), `ON CONFLICT … DO UPDATE`,
/// `RETURNING`, no dialect's own functions. What differs (the schema's DDL,
/// how a transaction starts, backups) belongs to each store.
package protocol SQLConnection {
    /// Runs a statement that returns no rows.
    func execute(_ sql: String, _ arguments: [any SQLBindable]) throws

    /// Runs a query and returns its rows.
    func rows(_ sql: String, _ arguments: [any SQLBindable]) throws -> [SQLRow]

    /// Runs a query and hands each row to `body`, without keeping them all.
    func forEachRow(_ sql: String, _ arguments: [any SQLBindable], _ body: (SQLRow) throws -> Void) throws

    /// Runs an `INSERT` of exactly one row (without `RETURNING`) into a table
    /// whose integer primary key `key` the database assigns, and returns the
    /// key it assigned. On SQLite `key` must be the table's `INTEGER PRIMARY
    /// KEY` (its rowid), and a statement that inserted no row, or several,
    /// fails INTERNAL.
    func insertOne(_ sql: String, _ arguments: [any SQLBindable], assigningKey key: String) throws -> Int64
}

extension SQLConnection {
    package func execute(_ sql: String) throws { try self.execute(sql, []) }

    /// The key as the statement returns it (`RETURNING key`).
    package func insertOne(_ sql: String, _ arguments: [any SQLBindable], assigningKey key: String) throws -> Int64 {
        guard let assigned = try self.value(Int64.self, "\(sql) RETURNING \(key)", arguments) else {
            throw HavenError(code: .internal, message: "an insert returned no \(key)")
        }
        return assigned
    }

    /// Runs a query without arguments and returns its rows.
    package func rows(_ sql: String) throws -> [SQLRow] { try self.rows(sql, []) }

    /// The first row, if any.
    package func row(_ sql: String, _ arguments: [any SQLBindable] = []) throws -> SQLRow? {
        try self.rows(sql, arguments).first
    }

    /// The first column of the first row, if any (nil for no row or NULL).
    package func value<T: SQLDecodable>(
        _ type: T.Type,
        _ sql: String,
        _ arguments: [any SQLBindable] = []
    ) throws
        -> T?
    {
        guard let row = try self.row(sql, arguments), !row.values.isEmpty else { return nil }
        return try row[0] as T?
    }

    /// The first column of every row.
    package func values<T: SQLDecodable>(
        _ type: T.Type,
        _ sql: String,
        _ arguments: [any SQLBindable] = []
    ) throws
        -> [T]
    {
        try self.rows(sql, arguments).map { try $0[0] }
    }
}

/// One row of a result: its values, and the names of its columns.
package struct SQLRow: Sendable {
    /// The columns' names, as the database spells them (PostgreSQL folds
    /// unquoted names to lower case: lookups ignore case).
    package let names: [String]
    package let values: [SQLValue]

    package init(names: [String], values: [SQLValue]) {
        self.names = names
        self.values = values
    }

    /// The value of a column by position, as `T`.
    package subscript<T: SQLDecodable>(_ index: Int) -> T {
        get throws {
            guard index < self.values.count else {
                throw HavenError(
                    code: .internal,
                    message: "a query returned \(self.values.count) columns, not \(index + 1)"
                )
            }
            guard let value = T.decode(self.values[index]) else {
                throw HavenError(
                    code: .dataLoss,
                    message: "stored column \(self.names[index]) holds an unexpected type"
                )
            }
            return value
        }
    }

    /// The value of a column by name (ignoring case), as `T`.
    package subscript<T: SQLDecodable>(_ name: String) -> T {
        get throws {
            guard let index = self.index(of: name) else {
                throw HavenError(code: .internal, message: "a query returned no column \(name)")
            }
            return try self[index]
        }
    }

    private func index(of name: String) -> Int? {
        if let exact = self.names.firstIndex(of: name) { return exact }
        return self.names.firstIndex { Self.equalIgnoringASCIICase($0, name) }
    }

    private static func equalIgnoringASCIICase(_ a: String, _ b: String) -> Bool {
        a.utf8.count == b.utf8.count
            && zip(a.utf8, b.utf8).allSatisfy { x, y in
                x == y || (x | 0x20 == y | 0x20 && (x | 0x20) >= 0x61 && (x | 0x20) <= 0x7A)
            }
    }
}

// MARK: Bindings

extension SQLValue: SQLBindable {
    package var sqlValue: SQLValue { self }
}

extension String: SQLBindable, SQLDecodable {
    package var sqlValue: SQLValue { .text(self) }
    package static func decode(_ value: SQLValue) -> String? {
        if case .text(let text) = value { return text }
        return nil
    }
}

extension Int64: SQLBindable, SQLDecodable {
    package var sqlValue: SQLValue { .integer(self) }
    package static func decode(_ value: SQLValue) -> Int64? {
        switch value {
        case .integer(let integer): integer
        case .bool(let bool): bool ? 1 : 0
        default: nil
        }
    }
}

extension Int: SQLBindable, SQLDecodable {
    package var sqlValue: SQLValue { .integer(Int64(self)) }
    package static func decode(_ value: SQLValue) -> Int? { Int64.decode(value).map { Int($0) } }
}

extension Int32: SQLBindable, SQLDecodable {
    package var sqlValue: SQLValue { .integer(Int64(self)) }
    package static func decode(_ value: SQLValue) -> Int32? { Int64.decode(value).map { Int32(clamping: $0) } }
}

extension Bool: SQLBindable, SQLDecodable {
    package var sqlValue: SQLValue { .bool(self) }
    package static func decode(_ value: SQLValue) -> Bool? {
        switch value {
        case .bool(let bool): bool
        case .integer(let integer): integer != 0
        default: nil
        }
    }
}

extension Data: SQLBindable, SQLDecodable {
    package var sqlValue: SQLValue { .blob(self) }
    package static func decode(_ value: SQLValue) -> Data? {
        if case .blob(let data) = value { return data }
        return nil
    }
}

extension Optional: SQLBindable where Wrapped: SQLBindable {
    package var sqlValue: SQLValue { self?.sqlValue ?? .null }
}

extension Optional: SQLDecodable where Wrapped: SQLDecodable {
    package static func decode(_ value: SQLValue) -> Wrapped?? {
        if case .null = value { return .some(nil) }
        return Wrapped.decode(value).map { .some($0) }
    }
}

/// The `WHERE` of a query built from optional filters: each condition with
/// its arguments, in placeholder order.
struct SQLConditions {
    private(set) var clauses: [String] = []
    private(set) var arguments: [any SQLBindable] = []

    /// Adds a condition whose `?`s take `values`, in order.
    mutating func add(_ clause: String, _ values: any SQLBindable...) {
        self.add(clause, arguments: values)
    }

    /// Adds a condition whose `?`s take `arguments`, in order.
    mutating func add(_ clause: String, arguments: [any SQLBindable]) {
        self.clauses.append(clause)
        self.arguments += arguments
    }

    /// Adds `column IN (?, …)`; an empty set matches nothing (`IN ()` does not parse).
    mutating func among(_ column: String, _ values: [any SQLBindable]) {
        guard !values.isEmpty else { return self.clauses.append("1 = 0") }
        self.clauses.append("\(column) IN (\(SQLTransaction.placeholders(values.count)))")
        self.arguments += values
    }

    /// `WHERE a AND b …`, or nothing when there is no condition.
    var sql: String { self.clauses.isEmpty ? "" : "WHERE " + self.clauses.joined(separator: " AND ") }
}
