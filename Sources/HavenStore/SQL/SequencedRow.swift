import Crypto
import Foundation
import HavenProtocol

/// A row of an append-only table kept beside a record, one per element of a
/// history that may grow without bound: a case's timeline events
/// (`caseEvent`), a survivor's services (`survivorService`), an accused
/// person's status changes (`accusedStatus`).
///
/// Each row has its owner's id and its place among the owner's rows
/// (`sequence`, 1-based, gap-free), is written once, and is changed only by
/// an erasure, which drops its sealed text. That text (if its table holds
/// any: ``sealingKind``) is sealed under the owner's own key, bound to the
/// row's place. The audit trail names a row
/// `<table>/<owner id>/<sequence>` and commits to every column.
protocol SequencedRow {
    /// The table, which is also the audit trail's kind for its rows.
    static var table: String { get }
    /// The column holding the owner's id.
    static var ownerColumn: String { get }
    /// The column holding the row's day (`YYYY-MM-DD`).
    static var dayColumn: String { get }
    /// The kind of record that owns the rows, whose key seals their text;
    /// nil for a table whose rows never hold sealed text (an accused is no
    /// record of its own, and has no key).
    static var sealingKind: RecordKind? { get }
    /// The domain of the row's stored hash.
    static var hashDomain: String { get }
    /// Whether the table keeps, beside each row, the sequence of the audit
    /// entry that appended it (`auditSequence`, outside the row's stored
    /// hash): the audit trail's search finds the entry by its owner's rows.
    static var keepsAuditSequence: Bool { get }
    /// The table's statements, made once (`SequencedStatements(Self.self)`).
    static var statements: SequencedStatements { get }

    var ownerID: String { get }
    var sequence: Int64 { get }
    var id: String { get }
    var officeCode: String { get }
    var day: String? { get }
    var kind: Int { get }
    /// The element without its sealed text.
    var body: Data { get }
    /// Its text, sealed under the owner's key.
    var sealed: Data? { get set }

    init(ownerID: String, sequence: Int64, id: String, officeCode: String, day: String?, kind: Int, body: Data)
}

extension SequencedRow {
    static var keepsAuditSequence: Bool { false }

    /// The audit trail's name for it: `<owner id>/<sequence>` (of kind ``table``).
    var resourceID: String { "\(self.ownerID)/\(self.sequence)" }

    /// `SELECT` of every column, in the order ``init(_:)`` reads them.
    static var select: String { Self.statements.select }

    /// Reads a row selected by ``select``.
    init(_ row: SQLRow) throws {
        self.init(
            ownerID: try row[0],
            sequence: try row[1],
            id: try row[2],
            officeCode: try row[3],
            day: try row[4],
            kind: try row[5],
            body: try row[6]
        )
        self.sealed = try row[7]
    }
}

/// The statements of a table of sequenced rows, made once for each table
/// from its columns: an append runs two of them on the store's one writer,
/// and building their text for every row was about 1 % of the writer's time.
struct SequencedStatements: Sendable {
    /// `SELECT` of every column, in the order `SequencedRow.init(_:)` reads them.
    let select: String
    /// The owner's last sequence, 0 when it has none; one argument, the owner's id.
    let lastSequence: String
    /// A new row: the owner's id, sequence, id, office, day, kind, body and
    /// sealed text, then the audit entry's sequence when the table keeps it.
    let insert: String

    init<Row: SequencedRow>(_ type: Row.Type) {
        let columns = "\(Row.ownerColumn), sequence, id, officeCode, \(Row.dayColumn), kind, body, sealed"
        self.select = "SELECT \(columns) FROM \(Row.table)"
        self.lastSequence = "SELECT COALESCE(MAX(sequence), 0) FROM \(Row.table) WHERE \(Row.ownerColumn) = ?"
        let inserted = Row.keepsAuditSequence ? columns + ", auditSequence" : columns
        let count = Row.keepsAuditSequence ? 9 : 8
        self.insert = "INSERT INTO \(Row.table) (\(inserted)) VALUES (\(SQLTransaction.placeholders(count)))"
    }
}

extension SQLTransaction {
    /// The last sequence of an owner's rows (0 when it has none).
    func lastSequence<Row: SequencedRow>(_ type: Row.Type, of ownerID: String) throws -> UInt32 {
        UInt32(
            clamping: try self.sql.value(
                Int64.self,
                Row.statements.lastSequence,
                [ownerID]
            ) ?? 0
        )
    }

    /// Writes a new row, sealing `text` (when not empty) under its owner's
    /// key, and notes it for the transaction's audit entry.
    func insert<Row: SequencedRow>(_ row: Row, sealing text: String) throws {
        var row = row
        if !text.isEmpty {
            row.sealed = Data(try self.seal(text, of: row))
        }
        var columns: [any SQLBindable] = [
            row.ownerID, row.sequence, row.id, row.officeCode, row.day, row.kind, row.body, row.sealed,
        ]
        if Row.keepsAuditSequence {
            // The entry that will cover this row (none in a store without an audit trail).
            let entry = try self.nextAuditSequence()
            columns.append(entry)
            if let entry { self.journal.auditHints[row.resourceID] = entry }
        }
        try self.sql.execute(Row.statements.insert, columns)
        self.journaled(row)
    }

    /// An owner's rows after `sequence`, in order.
    func rows<Row: SequencedRow>(
        _ type: Row.Type,
        of ownerID: String,
        after sequence: UInt32,
        newestFirst: Bool,
        limit: Int
    ) throws -> [Row] {
        try self.sql.rows(
            """
            \(Row.select) WHERE \(Row.ownerColumn) = ? AND sequence > ?
            ORDER BY sequence \(newestFirst ? "DESC" : "ASC") LIMIT ?
            """,
            [ownerID, Int64(sequence), max(0, limit)]
        ).map(Row.init)
    }

    /// Drops the sealed text of an owner's rows (an erasure: the owner's key
    /// is gone, and so is every box it sealed).
    func eraseSealed<Row: SequencedRow>(_ type: Row.Type, of ownerID: String) throws {
        let rows = try self.sql.rows(
            "\(Row.select) WHERE \(Row.ownerColumn) = ? AND sealed IS NOT NULL ORDER BY sequence",
            [ownerID]
        ).map(Row.init)
        for var row in rows {
            row.sealed = nil
            try self.sql.execute(
                "UPDATE \(Row.table) SET sealed = NULL WHERE \(Row.ownerColumn) = ? AND sequence = ?",
                [row.ownerID, row.sequence]
            )
            self.journaled(row)
        }
    }

    /// The row's sealed text, opened ("" when it has none).
    func openSealed<Row: SequencedRow>(_ row: Row) throws -> String {
        guard let sealed = row.sealed else { return "" }
        guard let key = try self.ownerKey(of: row, create: false) else {
            throw HavenError(code: .dataLoss, message: "a sealed \(Row.table) \(row.resourceID) has no key")
        }
        do {
            let plaintext = try SealBox.open(Array(sealed), key: key, context: Self.context(of: row))
            return String(decoding: plaintext, as: UTF8.self)
        } catch {
            throw HavenError(
                code: .dataLoss,
                message: "the sealed text of \(Row.table) \(row.resourceID) does not open (moved?)"
            )
        }
    }

    private func seal<Row: SequencedRow>(_ text: String, of row: Row) throws -> [UInt8] {
        guard let key = try self.ownerKey(of: row, create: true) else {
            throw HavenError(
                code: .failedPrecondition,
                message: "the store holds no keys to seal a \(Row.table) with"
            )
        }
        return try SealBox.seal(Array(text.utf8), key: key, context: Self.context(of: row))
    }

    /// A row's box is bound to its table, its place and its owner's office.
    private static func context<Row: SequencedRow>(of row: Row) -> String {
        SealBox.fieldsContext(Row.table, row.resourceID, row.officeCode, version: 1)
    }

    private func ownerKey<Row: SequencedRow>(of row: Row, create: Bool) throws -> SymmetricKey? {
        guard let kind = Row.sealingKind else {
            throw HavenError(code: .internal, message: "\(Row.table) rows hold no sealed text")
        }
        return try self.recordKey(kind: kind.rawValue, id: row.ownerID, office: row.officeCode, create: create)
    }

    /// Notes a row written, for the transaction's audit entry (rows have no
    /// versions of their own: always 1).
    func journaled<Row: SequencedRow>(_ row: Row) {
        self.journal.wrote(
            kind: Row.table,
            id: row.resourceID,
            office: row.officeCode,
            version: 1,
            hash: Self.storedHash(row)
        )
    }

    /// What the audit trail commits to for a row: every column.
    static func storedHash<Row: SequencedRow>(_ row: Row) -> [UInt8] {
        var hasher = StoredHasher(Row.hashDomain)
        hasher.add(row.ownerID)
        hasher.add(row.sequence)
        hasher.add(row.id)
        hasher.add(row.officeCode)
        hasher.add(row.day)
        hasher.add(Int64(row.kind))
        hasher.add(row.body)
        hasher.add(row.sealed)
        return hasher.finalize()
    }

    /// Every row's stored hash, keyed `<table>/<owner id>/<sequence>`.
    func rowHashes<Row: SequencedRow>(_ type: Row.Type, into hashes: inout [String: [UInt8]]) throws {
        try self.sql.forEachRow(Row.select, []) { selected in
            let row = try Row(selected)
            hashes["\(Row.table)/\(row.resourceID)"] = Self.storedHash(row)
        }
    }
}

extension SQLTransaction {
    /// Each stored record of `type` with its row, by id, one at a time (the
    /// moves at open: no table held in memory).
    func forEachStored<R: StoredRecord>(_ type: R.Type, _ body: (R, RecordRow) throws -> Void) throws {
        let kind = R.recordKind.rawValue
        for id in try self.sql.values(String.self, "SELECT id FROM record WHERE kind = ? ORDER BY id", [kind]) {
            guard let row = try self.sql.row("\(RecordRow.select) WHERE kind = ? AND id = ?", [kind, id]) else {
                continue
            }
            let stored = try RecordRow(row)
            try body(try self.decode(stored), stored)
        }
    }

    /// Stores a record again at the version it had, its sealed identity
    /// kept, after a move took what it held into rows of their own (not a
    /// change of it), and notes the row for the move's audit entry.
    func restore<R: StoredRecord>(_ record: R, was stored: RecordRow) throws {
        let head = try self.row(record, sealedIdentity: stored.secret)
        try head.update(in: self.sql)
        self.journaled(head, version: record.recordVersion)
    }
}

/// The audit entries of a move made when a store opens (`store.migrate` by
/// `havend`): one for every 500 rows written or so, and one for the rest,
/// so that the chain covers every row the move wrote.
struct MoveAudit {
    let tx: SQLTransaction
    let detail: String
    private let now = Int64(Date().timeIntervalSince1970 * 1000)
    private var pending = 0

    init(_ tx: SQLTransaction, detail: String) {
        self.tx = tx
        self.detail = detail
    }

    /// Counts rows written; appends an entry once enough are pending.
    mutating func wrote(_ rows: Int) throws {
        self.pending += rows
        if self.pending >= 500 { try self.finish() }
    }

    /// Appends the entry covering what is still pending, if anything is.
    mutating func finish() throws {
        guard self.pending > 0 else { return }
        try self.tx.appendAudit(
            NewAuditEntry(atUnixMs: self.now, principalID: "havend", action: "store.migrate", detail: self.detail)
        )
        self.pending = 0
    }
}
