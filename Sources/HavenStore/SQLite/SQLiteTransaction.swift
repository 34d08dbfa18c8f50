import Foundation
import GRDB
import HavenProtocol
import SwiftProtobuf

/// The reads and writes of one GRDB transaction.
struct SQLiteTransaction: StoreWriter {
    let db: Database

    init(_ db: Database) {
        self.db = db
    }

    // MARK: Records

    func load<R: StoredRecord>(_ type: R.Type, id: String) throws -> R? {
        try RecordRow.filter(RecordRow.Columns.kind == R.recordKind.rawValue && RecordRow.Columns.id == id)
            .fetchOne(self.db).map(Self.decode)
    }

    func load<R: StoredRecord>(_ type: R.Type, alias: String) throws -> R? {
        try RecordRow.filter(RecordRow.Columns.kind == R.recordKind.rawValue && RecordRow.Columns.alias == alias)
            .fetchOne(self.db).map(Self.decode)
    }

    func load<R: StoredRecord>(_ type: R.Type, ids: [String]) throws -> [R] {
        guard !ids.isEmpty else { return [] }
        let rows = try RecordRow.filter(
            RecordRow.Columns.kind == R.recordKind.rawValue && ids.contains(RecordRow.Columns.id)
        )
        .fetchAll(self.db)
        let byID = Dictionary(rows.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        return try ids.compactMap { try byID[$0].map(Self.decode) }
    }

    func page<R: StoredRecord>(_ type: R.Type, _ query: RecordQuery) throws -> RecordPage<R> {
        var request = self.filtered(R.recordKind, query)
        if let after = query.after {
            switch query.order {
            case .idAscending:
                request = request.filter(RecordRow.Columns.id > after.id)
            case .aliasAscending:
                request = request.filter(
                    RecordRow.Columns.alias > after.alias
                        || (RecordRow.Columns.alias == after.alias && RecordRow.Columns.id > after.id)
                )
            case .newestFirst:
                request = request.filter(
                    RecordRow.Columns.createdAt < after.sortKey
                        || (RecordRow.Columns.createdAt == after.sortKey && RecordRow.Columns.id < after.id)
                )
            }
        }
        switch query.order {
        case .idAscending: request = request.order(RecordRow.Columns.id.asc)
        case .aliasAscending: request = request.order(RecordRow.Columns.alias.asc, RecordRow.Columns.id.asc)
        case .newestFirst: request = request.order(RecordRow.Columns.createdAt.desc, RecordRow.Columns.id.desc)
        }
        // One more than asked tells whether another page exists.
        let rows = try request.limit(query.limit + 1).fetchAll(self.db)
        let records = try rows.prefix(query.limit).map { try Self.decode($0) as R }
        var next: PageCursor?
        if rows.count > query.limit, let last = rows.prefix(query.limit).last {
            next = PageCursor(sortKey: last.createdAt, alias: last.alias ?? "", id: last.id)
        }
        return RecordPage(records: records, next: next)
    }

    func count<R: StoredRecord>(_ type: R.Type, _ query: RecordQuery) throws -> Int {
        try self.filtered(R.recordKind, query).fetchCount(self.db)
    }

    private func filtered(_ kind: RecordKind, _ query: RecordQuery) -> QueryInterfaceRequest<RecordRow> {
        var request = RecordRow.filter(RecordRow.Columns.kind == kind.rawValue)
        if let codes = query.officeCodes { request = request.filter(codes.contains(RecordRow.Columns.officeCode)) }
        if let statuses = query.statuses { request = request.filter(statuses.contains(RecordRow.Columns.status)) }
        if let categories = query.categories {
            request = request.filter(categories.contains(RecordRow.Columns.category))
        }
        if let from = query.dayFrom { request = request.filter(RecordRow.Columns.day >= from) }
        if let to = query.dayTo { request = request.filter(RecordRow.Columns.day <= to) }
        if let from = query.createdFrom { request = request.filter(RecordRow.Columns.createdAt >= from) }
        if let to = query.createdTo { request = request.filter(RecordRow.Columns.createdAt <= to) }
        if let since = query.updatedSince { request = request.filter(RecordRow.Columns.updatedAt >= since) }
        if let partner = query.partnerID { request = request.filter(RecordRow.Columns.partnerID == partner) }
        if let subject = query.subjectID { request = request.filter(RecordRow.Columns.subjectID == subject) }
        if let flagged = query.flagged { request = request.filter(RecordRow.Columns.flagged == flagged) }
        if let ids = query.ids { request = request.filter(ids.contains(RecordRow.Columns.id)) }
        if let referral = query.referredBy {
            let statuses = referral.statuses.map(String.init).joined(separator: ",")
            request = request.filter(
                sql: """
                    id IN (SELECT subjectID FROM record AS referral WHERE referral.kind = 'referral'
                        AND referral.partnerID = ? AND referral.status IN (\(statuses)))
                    """,
                arguments: [referral.partnerID]
            )
        }
        return request
    }

    func secret<R: StoredRecord>(of type: R.Type, id: String) throws -> [UInt8]? {
        try Data.fetchOne(
            self.db,
            sql: "SELECT secret FROM record WHERE kind = ? AND id = ?",
            arguments: [R.recordKind.rawValue, id]
        ).map(Array.init)
    }

    func insert<R: StoredRecord>(_ record: R, secret: [UInt8]?) throws {
        let row = try Self.row(record, secret: secret.map { Data($0) })
        if try RecordRow.exists(self.db, key: ["kind": row.kind, "id": row.id]) {
            throw HavenError(code: .alreadyExists, message: "a \(R.recordKind.rawValue) with that id already exists")
        }
        if let alias = row.alias,
            try RecordRow.filter(RecordRow.Columns.kind == row.kind && RecordRow.Columns.alias == alias).fetchCount(
                self.db
            ) > 0
        {
            throw HavenError(
                code: .alreadyExists,
                message: "a \(R.recordKind.rawValue) with that reference already exists"
            )
        }
        try row.insert(self.db)
    }

    func update<R: StoredRecord>(_ record: R, expectedVersion: UInt64, secret: [UInt8]??) throws {
        guard
            let current = try Int64.fetchOne(
                self.db,
                sql: "SELECT version FROM record WHERE kind = ? AND id = ?",
                arguments: [R.recordKind.rawValue, record.recordID]
            )
        else {
            throw HavenError(code: .notFound, message: "no \(R.recordKind.rawValue) with that id")
        }
        guard UInt64(current) == expectedVersion else {
            throw HavenError.staleVersion(expected: expectedVersion, current: UInt64(current))
        }
        var row = try Self.row(record, secret: nil)
        switch secret {
        case .none:
            row.secret = try Data.fetchOne(
                self.db,
                sql: "SELECT secret FROM record WHERE kind = ? AND id = ?",
                arguments: [row.kind, row.id]
            )
        case .some(let replacement):
            row.secret = replacement.map { Data($0) }
        }
        try row.update(self.db)
    }

    static func row<R: StoredRecord>(_ record: R, secret: Data?) throws -> RecordRow {
        if let violation = record.storageViolation {
            throw HavenError(code: .internal, message: violation)
        }
        let index = record.index
        let body: Data
        do {
            body = try record.serializedBytes()
        } catch {
            throw HavenError(code: .internal, message: "could not serialize a \(R.recordKind.rawValue)")
        }
        guard body.count <= HavenLimits.maxRecordBytes else {
            throw HavenError(
                code: .failedPrecondition,
                message:
                    "the \(R.recordKind.rawValue) would exceed \(HavenLimits.maxRecordBytes) bytes, the most a record may hold"
            )
        }
        return RecordRow(
            kind: R.recordKind.rawValue,
            id: record.recordID,
            alias: index.alias,
            officeCode: index.officeCode,
            partnerID: index.partnerID,
            subjectID: index.subjectID,
            status: index.status,
            category: index.category,
            day: index.day,
            createdAt: index.createdAtUnixMs,
            updatedAt: index.updatedAtUnixMs,
            flagged: index.flagged,
            version: Int64(record.recordVersion),
            body: body,
            secret: secret
        )
    }

    static func decode<R: StoredRecord>(_ row: RecordRow) throws -> R {
        do {
            return try R(serializedBytes: row.body)
        } catch {
            throw HavenError(code: .dataLoss, message: "stored \(row.kind) \(row.id) cannot be decoded")
        }
    }

    // MARK: Change log

    func appendChange(_ entry: NewChange) throws -> UInt64 {
        let body: Data
        do {
            body = try entry.event.serializedBytes()
        } catch {
            throw HavenError(code: .internal, message: "could not serialize a change")
        }
        try self.db.execute(
            sql: "INSERT INTO change (committedAt, officeCode, partnerID, survivorID, body) VALUES (?, ?, ?, ?, ?)",
            arguments: [entry.event.committedAtUnixMs, entry.officeCode, entry.partnerID, entry.survivorID, body]
        )
        return UInt64(self.db.lastInsertedRowID)
    }

    func changes(after sequence: UInt64, limit: Int) throws -> [ChangeEntry] {
        try Row.fetchAll(
            self.db,
            sql: """
                SELECT sequence, officeCode, partnerID, survivorID, body FROM change
                WHERE sequence > ? ORDER BY sequence LIMIT ?
                """,
            arguments: [Int64(clamping: sequence), limit]
        ).map { row in
            let sequence = UInt64(row["sequence"] as Int64)
            var event: Haven_V1_ChangeEvent
            do {
                event = try Haven_V1_ChangeEvent(serializedBytes: row["body"] as Data)
            } catch {
                throw HavenError(code: .dataLoss, message: "change \(sequence) cannot be decoded")
            }
            event.sequence = sequence
            return ChangeEntry(
                sequence: sequence,
                event: event,
                officeCode: row["officeCode"],
                partnerID: row["partnerID"],
                survivorID: row["survivorID"]
            )
        }
    }

    func latestChangeSequence() throws -> UInt64 {
        try SQLiteStore.latestSequence(self.db)
    }

    // MARK: Counters, idempotency

    func nextCounterValue(_ name: String) throws -> UInt64 {
        try self.db.execute(
            sql: "INSERT INTO counter (name, value) VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1",
            arguments: [name]
        )
        return UInt64(try Int64.fetchOne(self.db, sql: "SELECT value FROM counter WHERE name = ?", arguments: [name])!)
    }

    func idempotencyRecord(principalID: String, key: String) throws -> IdempotencyRecord? {
        try Row.fetchOne(
            self.db,
            sql: "SELECT * FROM idempotency WHERE principalID = ? AND key = ?",
            arguments: [principalID, key]
        ).map { row in
            IdempotencyRecord(
                principalID: row["principalID"],
                key: row["key"],
                method: row["method"],
                requestDigest: Array(row["requestDigest"] as Data),
                resultID: row["resultID"],
                createdAtUnixMs: row["createdAt"]
            )
        }
    }

    func recordIdempotency(_ record: IdempotencyRecord) throws {
        try self.db.execute(
            sql: """
                INSERT INTO idempotency (principalID, key, method, requestDigest, resultID, createdAt)
                VALUES (?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                record.principalID, record.key, record.method, Data(record.requestDigest), record.resultID,
                record.createdAtUnixMs,
            ]
        )
    }

    // MARK: Accounts, office keys

    func account(id: String) throws -> Account? {
        try Row.fetchOne(self.db, sql: "SELECT * FROM account WHERE id = ?", arguments: [id]).map(Self.account)
    }

    func accounts() throws -> [Account] {
        try Row.fetchAll(self.db, sql: "SELECT * FROM account ORDER BY id").map(Self.account)
    }

    static func account(_ row: Row) -> Account {
        let codes: String = row["officeCodes"]
        return Account(
            id: row["id"],
            displayName: row["displayName"],
            role: Haven_V1_Role(rawValue: row["role"]) ?? .unspecified,
            officeCodes: codes.split(separator: ",").map(String.init),
            partnerID: row["partnerID"],
            enabled: row["enabled"],
            createdAtUnixMs: row["createdAt"]
        )
    }

    func accountRevision() throws -> UInt64 {
        UInt64(
            try Int64.fetchOne(
                self.db,
                sql: "SELECT value FROM counter WHERE name = ?",
                arguments: [Self.accountRevision]
            )
                ?? 0
        )
    }

    private static let accountRevision = "account-revision"

    func saveAccount(_ account: Account) throws {
        _ = try self.nextCounterValue(Self.accountRevision)
        try self.db.execute(
            sql: """
                INSERT INTO account (id, displayName, role, officeCodes, partnerID, enabled, createdAt)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET displayName = excluded.displayName, role = excluded.role,
                    officeCodes = excluded.officeCodes, partnerID = excluded.partnerID, enabled = excluded.enabled
                """,
            arguments: [
                account.id, account.displayName, account.role.rawValue, account.officeCodes.joined(separator: ","),
                account.partnerID, account.enabled, account.createdAtUnixMs,
            ]
        )
    }

    func wrappedOfficeKey(officeCode: String) throws -> [UInt8]? {
        try Data.fetchOne(
            self.db,
            sql: "SELECT wrappedKey FROM officeKey WHERE officeCode = ?",
            arguments: [officeCode]
        )
        .map(Array.init)
    }

    func saveWrappedOfficeKey(officeCode: String, wrappedKey: [UInt8]) throws {
        try self.db.execute(
            sql: "INSERT INTO officeKey (officeCode, wrappedKey) VALUES (?, ?)",
            arguments: [officeCode, Data(wrappedKey)]
        )
    }
}
