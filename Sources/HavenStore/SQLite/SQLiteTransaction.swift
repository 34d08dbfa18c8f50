import Foundation
import GRDB
import HavenProtocol
import SwiftProtobuf

/// The reads and writes of one GRDB transaction.
struct SQLiteTransaction: StoreWriter {
    let db: Database
    /// The master keys (nil for a store opened without them: it can read and
    /// write what is not sealed, and refuses what is).
    let keys: StoreKeys?
    /// What this transaction wrote and has not audited yet.
    let journal: TransactionJournal
    /// False only for the benchmark baseline of the audit's cost.
    let auditing: Bool

    init(_ db: Database, keys: StoreKeys?, journal: TransactionJournal = TransactionJournal(), auditing: Bool = true) {
        self.db = db
        self.keys = keys
        self.journal = journal
        self.auditing = auditing
    }

    // MARK: Records

    // Statements every call makes are prepared once per connection and kept
    // (GRDB's statement cache): preparing one costs more than running it.

    func load<R: StoredRecord>(_ type: R.Type, id: String) throws -> R? {
        try RecordRow.fetchOne(
            try self.db.cachedStatement(sql: "SELECT * FROM record WHERE kind = ? AND id = ?"),
            arguments: [R.recordKind.rawValue, id]
        ).map(self.decode)
    }

    func load<R: StoredRecord>(_ type: R.Type, alias: String) throws -> R? {
        try RecordRow.fetchOne(
            try self.db.cachedStatement(sql: "SELECT * FROM record WHERE kind = ? AND alias = ?"),
            arguments: [R.recordKind.rawValue, alias]
        ).map(self.decode)
    }

    func load<R: StoredRecord>(_ type: R.Type, ids: [String]) throws -> [R] {
        guard !ids.isEmpty else { return [] }
        let rows = try RecordRow.filter(
            RecordRow.Columns.kind == R.recordKind.rawValue && ids.contains(RecordRow.Columns.id)
        )
        .fetchAll(self.db)
        let byID = Dictionary(rows.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        return try ids.compactMap { try byID[$0].map(self.decode) }
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
        let records = try rows.prefix(query.limit).map { try self.decode($0) as R }
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

    func identity(survivorID: String) throws -> Haven_V1_SurvivorIdentity? {
        guard
            let row = try Row.fetchOne(
                try self.db.cachedStatement(
                    sql: "SELECT officeCode, version, secret FROM record WHERE kind = 'survivor' AND id = ?"
                ),
                arguments: [survivorID]
            ),
            let secret = (row["secret"] as Data?).map(Array.init)
        else { return nil }
        let office: String = row["officeCode"] ?? ""
        let version = UInt64(row["version"] as Int64)
        let plaintext = try self.openIdentity(secret, survivorID: survivorID, office: office, version: version)
        do {
            return try Haven_V1_SurvivorIdentity(serializedBytes: plaintext)
        } catch {
            throw HavenError(code: .dataLoss, message: "a sealed identity does not decode")
        }
    }

    func insert<R: StoredRecord>(_ record: R, identity: Haven_V1_SurvivorIdentity?) throws {
        let (record, appended) = Self.splitTimeline(record)
        var row = try self.row(record, sealedIdentity: nil)
        if let identity {
            row.secret = Data(try self.sealIdentity(identity, of: record))
        }
        if try Bool.fetchOne(
            try self.db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM record WHERE kind = ? AND id = ?)"),
            arguments: [row.kind, row.id]
        ) == true {
            throw HavenError(code: .alreadyExists, message: "a \(R.recordKind.rawValue) with that id already exists")
        }
        if let alias = row.alias,
            try Bool.fetchOne(
                try self.db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM record WHERE kind = ? AND alias = ?)"),
                arguments: [row.kind, alias]
            ) == true
        {
            throw HavenError(
                code: .alreadyExists,
                message: "a \(R.recordKind.rawValue) with that reference already exists"
            )
        }
        try row.insert(into: self.db)
        self.journal.wrote(
            kind: row.kind,
            id: row.id,
            office: row.officeCode,
            version: record.recordVersion,
            hash: Self.storedHash(row)
        )
        if let head = record as? Haven_V1_Case { try self.appendEvents(appended, to: head) }
    }

    func update<R: StoredRecord>(_ record: R, expectedVersion: UInt64, sealed: SealedChange) throws {
        let (record, appended) = Self.splitTimeline(record)
        guard
            let current = try Row.fetchOne(
                try self.db.cachedStatement(sql: "SELECT version, secret FROM record WHERE kind = ? AND id = ?"),
                arguments: [R.recordKind.rawValue, record.recordID]
            )
        else {
            throw HavenError(code: .notFound, message: "no \(R.recordKind.rawValue) with that id")
        }
        let currentVersion = UInt64(current["version"] as Int64)
        guard currentVersion == expectedVersion else {
            throw HavenError.staleVersion(expected: expectedVersion, current: currentVersion)
        }
        var erasing = false
        if case .erase = sealed {
            erasing = true
            try self.eraseRecordKey(kind: R.recordKind, id: record.recordID)
            if R.recordKind == .caseRecord { try self.eraseEventNotes(caseID: record.recordID) }
        }
        var row = try self.row(record, sealedIdentity: nil, sealing: !erasing)
        switch sealed {
        case .keep:
            if let secret = (current["secret"] as Data?).map(Array.init) {
                // Sealed again for the new version: the old box stops matching.
                let plaintext = try self.openIdentity(
                    secret,
                    survivorID: record.recordID,
                    office: record.index.officeCode ?? "",
                    version: currentVersion
                )
                row.secret = Data(
                    try self.sealIdentityBytes(plaintext, of: record)
                )
            }
        case .identity(let identity):
            row.secret = Data(try self.sealIdentity(identity, of: record))
        case .erase:
            row.secret = nil
        }
        try row.update(in: self.db)
        self.journal.wrote(
            kind: row.kind,
            id: row.id,
            office: row.officeCode,
            version: record.recordVersion,
            hash: Self.storedHash(row)
        )
        if let head = record as? Haven_V1_Case { try self.appendEvents(appended, to: head) }
    }

    /// The row of a record: index columns, the body without its sealed
    /// fields, and those fields sealed under the record's key.
    /// When `sealing` is false (an erasure), the sealed fields are dropped.
    func row<R: StoredRecord>(_ record: R, sealedIdentity: Data?, sealing: Bool = true) throws -> RecordRow {
        if let violation = record.storageViolation {
            throw HavenError(code: .internal, message: violation)
        }
        var stripped = record
        let fields = FieldSealing.take(&stripped)
        let index = record.index
        let body: Data = stripped.serializedPayload()
        // What a read returns: the body with its sealed fields put back.
        let size = body.count + fields.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
        guard size <= HavenLimits.maxRecordBytes else {
            throw HavenError(
                code: .failedPrecondition,
                message:
                    "the \(R.recordKind.rawValue) would exceed \(HavenLimits.maxRecordBytes) bytes, the most a record may hold"
            )
        }
        let sealed = try self.sealFields(
            sealing ? fields : [:],
            kind: R.recordKind,
            id: record.recordID,
            office: index.officeCode ?? "",
            version: record.recordVersion
        )
        self.journal.lastSealed = ("\(R.recordKind.rawValue)/\(record.recordID)/\(record.recordVersion)", sealed)
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
            secret: sealedIdentity,
            sealed: sealed.map { Data($0) }
        )
    }

    func decode<R: StoredRecord>(_ row: RecordRow) throws -> R {
        var record: R
        do {
            record = try R(wireBytes: row.body)
        } catch {
            throw HavenError(code: .dataLoss, message: "stored \(row.kind) \(row.id) cannot be decoded")
        }
        if let sealed = row.sealed {
            let fields = try self.openFields(
                Array(sealed),
                kind: row.kind,
                id: row.id,
                office: row.officeCode ?? "",
                version: UInt64(row.version)
            )
            FieldSealing.put(fields, into: &record)
        }
        return record
    }

    /// What the audit trail commits to for a record version: every column.
    static func storedHash(_ row: RecordRow) -> [UInt8] {
        var hasher = StoredHasher("haven.v1 record")
        hasher.add(row.kind)
        hasher.add(row.id)
        hasher.add(row.alias)
        hasher.add(row.officeCode)
        hasher.add(row.partnerID)
        hasher.add(row.subjectID)
        hasher.add(Int64(row.status))
        hasher.add(Int64(row.category))
        hasher.add(row.day)
        hasher.add(row.createdAt)
        hasher.add(row.updatedAt)
        hasher.add(row.flagged)
        hasher.add(row.version)
        hasher.add(row.body)
        hasher.add(row.secret)
        hasher.add(row.sealed)
        return hasher.finalize()
    }

    // MARK: Change log

    func appendChange(_ entry: NewChange) throws -> UInt64 {
        var event = entry.event
        let subject = FieldSealing.take(from: &event)
        let body: Data = event.serializedPayload()
        let sealed = try subject.flatMap { kind, id, office, version, fields -> [UInt8]? in
            // The record's row was just written with these very fields: the same box serves.
            if let last = self.journal.lastSealed, last.key == "\(kind.rawValue)/\(id)/\(version)" {
                return last.box
            }
            return try self.sealFields(fields, kind: kind, id: id, office: office, version: version)
        }
        try self.db.cachedStatement(
            sql: """
                INSERT INTO change (committedAt, officeCode, partnerID, survivorID, body, recordKind, recordID, sealed)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            entry.event.committedAtUnixMs, entry.officeCode, entry.partnerID, entry.survivorID, body,
            subject?.0.rawValue, subject?.1, sealed.map { Data($0) },
        ]
        )
        let sequence = UInt64(self.db.lastInsertedRowID)
        self.journal.appended(
            change: sequence,
            hash: Self.changeHash(
                sequence: Int64(sequence),
                committedAt: entry.event.committedAtUnixMs,
                officeCode: entry.officeCode,
                partnerID: entry.partnerID,
                survivorID: entry.survivorID,
                body: body
            )
        )
        return sequence
    }

    /// What the audit trail commits to for a change-log entry. The sealed
    /// fields are not part of it: erasure removes them from history.
    static func changeHash(
        sequence: Int64,
        committedAt: Int64,
        officeCode: String?,
        partnerID: String?,
        survivorID: String?,
        body: Data
    ) -> [UInt8] {
        var hasher = StoredHasher("haven.v1 change")
        hasher.add(sequence)
        hasher.add(committedAt)
        hasher.add(officeCode)
        hasher.add(partnerID)
        hasher.add(survivorID)
        hasher.add(body)
        return hasher.finalize()
    }

    func changes(after sequence: UInt64, limit: Int) throws -> [ChangeEntry] {
        try Row.fetchAll(
            try self.db.cachedStatement(
                sql: """
                    SELECT sequence, officeCode, partnerID, survivorID, body, sealed FROM change
                    WHERE sequence > ? ORDER BY sequence LIMIT ?
                    """
            ),
            arguments: [Int64(clamping: sequence), limit]
        ).map { row in
            let sequence = UInt64(row["sequence"] as Int64)
            var event: Haven_V1_ChangeEvent
            do {
                event = try Haven_V1_ChangeEvent(wireBytes: row["body"] as Data)
            } catch {
                throw HavenError(code: .dataLoss, message: "change \(sequence) cannot be decoded")
            }
            if let sealed = (row["sealed"] as Data?).map(Array.init) {
                var copy = event
                if let (kind, id, office, version, _) = FieldSealing.take(from: &copy) {
                    let fields = try self.openFields(
                        sealed,
                        kind: kind.rawValue,
                        id: id,
                        office: office,
                        version: version
                    )
                    FieldSealing.put(fields, into: &event)
                }
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
        try self.db.cachedStatement(
            sql: "INSERT INTO counter (name, value) VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1"
        ).execute(arguments: [name]
        )
        return UInt64(
            try Int64.fetchOne(
                try self.db.cachedStatement(sql: "SELECT value FROM counter WHERE name = ?"),
                arguments: [name]
            )!
        )
    }

    func idempotencyRecord(principalID: String, key: String) throws -> IdempotencyRecord? {
        try Row.fetchOne(
            try self.db.cachedStatement(sql: "SELECT * FROM idempotency WHERE principalID = ? AND key = ?"),
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
        try self.db.cachedStatement(
            sql: """
                INSERT INTO idempotency (principalID, key, method, requestDigest, resultID, createdAt)
                VALUES (?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            record.principalID, record.key, record.method, Data(record.requestDigest), record.resultID,
            record.createdAtUnixMs,
        ]
        )
    }

    // MARK: Accounts, office keys

    func account(id: String) throws -> Account? {
        try Row.fetchOne(try self.db.cachedStatement(sql: "SELECT * FROM account WHERE id = ?"), arguments: [id]).map(
            Self.account
        )
    }

    func accounts() throws -> [Account] {
        try Row.fetchAll(try self.db.cachedStatement(sql: "SELECT * FROM account ORDER BY id")).map(Self.account)
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
                try self.db.cachedStatement(sql: "SELECT value FROM counter WHERE name = ?"),
                arguments: [Self.accountRevisionCounter]
            )
                ?? 0
        )
    }

    static let accountRevisionCounter = StoreCounters.accountRevision

    func saveAccount(_ account: Account) throws {
        _ = try self.nextCounterValue(Self.accountRevisionCounter)
        self.journal.wrote(kind: "account", id: account.id, office: nil, version: 0, hash: Self.accountHash(account))
        try self.db.cachedStatement(
            sql: """
                INSERT INTO account (id, displayName, role, officeCodes, partnerID, enabled, createdAt)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET displayName = excluded.displayName, role = excluded.role,
                    officeCodes = excluded.officeCodes, partnerID = excluded.partnerID, enabled = excluded.enabled
                """
        ).execute(arguments: [
            account.id, account.displayName, account.role.rawValue, account.officeCodes.joined(separator: ","),
            account.partnerID, account.enabled, account.createdAtUnixMs,
        ]
        )
    }

    /// What the audit trail commits to for an account.
    static func accountHash(_ account: Account) -> [UInt8] {
        var hasher = StoredHasher("haven.v1 account")
        hasher.add(account.id)
        hasher.add(account.displayName)
        hasher.add(Int64(account.role.rawValue))
        hasher.add(account.officeCodes.joined(separator: ","))
        hasher.add(account.partnerID)
        hasher.add(account.enabled)
        hasher.add(account.createdAtUnixMs)
        return hasher.finalize()
    }
}
