import Foundation
import HavenProtocol
import SwiftProtobuf

/// The reads and writes of one transaction of a SQL store: written once, in
/// the SQL that SQLite and PostgreSQL both accept, and run by both stores
/// through their ``SQLConnection``. No behaviour exists in one store only.
struct SQLTransaction: StoreWriter {
    let sql: any SQLConnection
    /// The master keys (nil for a store opened without them: it can read and
    /// write what is not sealed, and refuses what is).
    let keys: StoreKeys?
    /// What this transaction wrote and has not audited yet.
    let journal: TransactionJournal
    /// False only for the benchmark baseline of the audit's cost.
    let auditing: Bool
    /// What the writes before this one in its group transaction wrote (nil
    /// outside group commit: everything is read back).
    let group: GroupTransactionState?

    init(
        _ sql: any SQLConnection,
        keys: StoreKeys?,
        journal: TransactionJournal = TransactionJournal(),
        auditing: Bool = true,
        group: GroupTransactionState? = nil
    ) {
        self.sql = sql
        self.keys = keys
        self.journal = journal
        self.auditing = auditing
        self.group = group
    }

    /// Runs a write transaction's body and refuses to commit it when it wrote
    /// something its last audit entry does not cover.
    static func audited<T>(_ tx: SQLTransaction, _ body: (any StoreWriter) throws -> T) throws -> T {
        let value = try body(tx)
        guard !tx.journal.unaudited || !tx.auditing else {
            throw HavenError(code: .internal, message: "a write transaction ended without its audit entry")
        }
        return value
    }

    // MARK: Records

    func load<R: StoredRecord>(_ type: R.Type, id: String) throws -> R? {
        try self.sql.row("\(RecordRow.select) WHERE kind = ? AND id = ?", [R.recordKind.rawValue, id])
            .map { try self.remembered(RecordRow($0)) }
    }

    func load<R: StoredRecord>(_ type: R.Type, alias: String) throws -> R? {
        try self.sql.row("\(RecordRow.select) WHERE kind = ? AND alias = ?", [R.recordKind.rawValue, alias])
            .map { try self.remembered(RecordRow($0)) }
    }

    /// Decodes a loaded row and, in a write of group commit (not in reads,
    /// which never update), notes its version, sealed identity and the record:
    /// an update of the same record later in this transaction checks its
    /// version against them instead of reading them again, and writes its
    /// report facts only if they changed. Every change of a record in a
    /// transaction goes through ``update(_:expectedVersion:sealed:)``, which
    /// notes the new ones.
    private func remembered<R: StoredRecord>(_ row: RecordRow) throws -> R {
        let record: R = try self.decode(row)
        if self.group != nil {
            self.journal.loaded["\(row.kind)/\(row.id)"] = (row.version, row.secret, row.indexed, record)
        }
        return record
    }

    func load<R: StoredRecord>(_ type: R.Type, ids: [String]) throws -> [R] {
        guard !ids.isEmpty else { return [] }
        let rows = try self.sql.rows(
            "\(RecordRow.select) WHERE kind = ? AND id IN (\(Self.placeholders(ids.count)))",
            [R.recordKind.rawValue] + ids
        ).map(RecordRow.init)
        let byID = Dictionary(rows.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        return try ids.compactMap { try byID[$0].map(self.decode) }
    }

    func page<R: StoredRecord>(_ type: R.Type, _ query: RecordQuery) throws -> RecordPage<R> {
        var conditions = Self.conditions(R.recordKind, query)
        if let after = query.after {
            switch query.order {
            case .idAscending:
                conditions.add("id > ?", after.id)
            case .aliasAscending:
                conditions.add("(alias > ? OR (alias = ? AND id > ?))", after.alias, after.alias, after.id)
            case .newestFirst:
                conditions.add("(createdAt < ? OR (createdAt = ? AND id < ?))", after.sortKey, after.sortKey, after.id)
            }
        }
        let order =
            switch query.order {
            case .idAscending: "id ASC"
            case .aliasAscending: "alias ASC, id ASC"
            case .newestFirst: "createdAt DESC, id DESC"
            }
        // One more than asked tells whether another page exists.
        let rows = try self.sql.rows(
            "\(RecordRow.select) \(conditions.sql) ORDER BY \(order) LIMIT ?",
            conditions.arguments + [query.limit + 1]
        ).map(RecordRow.init)
        let records = try rows.prefix(query.limit).map { try self.decode($0) as R }
        var next: PageCursor?
        if rows.count > query.limit, let last = rows.prefix(query.limit).last {
            next = PageCursor(sortKey: last.createdAt, alias: last.alias ?? "", id: last.id)
        }
        return RecordPage(records: records, next: next)
    }

    func count<R: StoredRecord>(_ type: R.Type, _ query: RecordQuery) throws -> Int {
        let conditions = Self.conditions(R.recordKind, query)
        return try self.sql.value(Int.self, "SELECT COUNT(*) FROM record \(conditions.sql)", conditions.arguments) ?? 0
    }

    /// `?, ?, …`: `count` placeholders.
    static func placeholders(_ count: Int) -> String {
        Array(repeating: "?", count: count).joined(separator: ", ")
    }

    /// The conditions of a query on records.
    private static func conditions(_ kind: RecordKind, _ query: RecordQuery) -> SQLConditions {
        var conditions = SQLConditions()
        conditions.add("kind = ?", kind.rawValue)
        if let codes = query.officeCodes { conditions.among("officeCode", codes) }
        if let statuses = query.statuses { conditions.among("status", statuses) }
        if let categories = query.categories { conditions.among("category", categories) }
        if let from = query.dayFrom { conditions.add("day >= ?", from) }
        if let to = query.dayTo { conditions.add("day <= ?", to) }
        if let from = query.createdFrom { conditions.add("createdAt >= ?", from) }
        if let to = query.createdTo { conditions.add("createdAt <= ?", to) }
        if let since = query.updatedSince { conditions.add("updatedAt >= ?", since) }
        if let partner = query.partnerID { conditions.add("partnerID = ?", partner) }
        if let subject = query.subjectID { conditions.add("subjectID = ?", subject) }
        if let flagged = query.flagged { conditions.add("flagged = ?", flagged) }
        if let ids = query.ids { conditions.among("id", ids) }
        if let referral = query.referredBy {
            var referrals = SQLConditions()
            referrals.add("referral.kind = 'referral'")
            referrals.add("referral.partnerID = ?", referral.partnerID)
            referrals.among("referral.status", referral.statuses)
            conditions.add(
                "id IN (SELECT subjectID FROM record AS referral \(referrals.sql))",
                arguments: referrals.arguments
            )
        }
        return conditions
    }

    func identity(survivorID: String) throws -> Haven_V1_SurvivorIdentity? {
        guard
            let row = try self.sql.row(
                "SELECT officeCode, version, secret FROM record WHERE kind = 'survivor' AND id = ?",
                [survivorID]
            ),
            let secret = (try row["secret"] as Data?).map(Array.init)
        else { return nil }
        let office: String = try row["officeCode"] as String? ?? ""
        let version = UInt64(try row["version"] as Int64)
        let plaintext = try self.openIdentity(secret, survivorID: survivorID, office: office, version: version)
        do {
            return try Haven_V1_SurvivorIdentity(serializedBytes: plaintext)
        } catch {
            throw HavenError(code: .dataLoss, message: "a sealed identity does not decode")
        }
    }

    func insert<R: StoredRecord>(_ record: R, identity: Haven_V1_SurvivorIdentity?) throws {
        let (record, appended) = Self.splitAppended(record)
        var row = try self.row(record, sealedIdentity: nil)
        if let identity {
            row.secret = Data(try self.sealIdentity(identity, of: record))
        }
        if try self.sql.row("SELECT 1 FROM record WHERE kind = ? AND id = ?", [row.kind, row.id]) != nil {
            throw HavenError(code: .alreadyExists, message: "a \(R.recordKind.rawValue) with that id already exists")
        }
        if let alias = row.alias,
            try self.sql.row("SELECT 1 FROM record WHERE kind = ? AND alias = ?", [row.kind, alias]) != nil
        {
            throw Self.referenceTaken(R.recordKind)
        }
        try row.insert(into: self.sql)
        self.journaled(row, version: record.recordVersion)
        try self.insertFacts(record.reportFacts, of: R.recordKind, id: record.recordID)
        try self.appendRows(appended, to: record)
    }

    func update<R: StoredRecord>(_ record: R, expectedVersion: UInt64, sealed: SealedChange) throws {
        let (record, appended) = Self.splitAppended(record)
        let loadedKey = "\(R.recordKind.rawValue)/\(record.recordID)"
        let current: (version: Int64, secret: Data?, indexed: RecordRow.Indexed, record: R?)
        if let loaded = self.journal.loaded[loadedKey] {
            current = (loaded.version, loaded.secret, loaded.indexed, loaded.record as? R)
        } else {
            // Not loaded in this write (rare: every service loads before it
            // updates): the stored row, for its version, identity and indexed columns.
            guard
                let row = try self.sql.row(
                    "\(RecordRow.select) WHERE kind = ? AND id = ?",
                    [R.recordKind.rawValue, record.recordID]
                ).map(RecordRow.init)
            else {
                throw HavenError(code: .notFound, message: "no \(R.recordKind.rawValue) with that id")
            }
            current = (row.version, row.secret, row.indexed, nil)
        }
        let currentVersion = UInt64(current.version)
        guard currentVersion == expectedVersion else {
            throw HavenError.staleVersion(expected: expectedVersion, current: currentVersion)
        }
        if let alias = record.index.alias, alias != current.indexed.alias,
            try self.sql.row(
                "SELECT 1 FROM record WHERE kind = ? AND alias = ? AND id <> ?",
                [R.recordKind.rawValue, alias, record.recordID]
            ) != nil
        {
            throw Self.referenceTaken(R.recordKind)
        }
        var erasing = false
        if case .erase = sealed {
            erasing = true
            try self.eraseRecordKey(kind: R.recordKind, id: record.recordID)
            switch R.recordKind {
            case .caseRecord: try self.eraseSealed(CaseEventRow.self, of: record.recordID)
            case .survivor: try self.eraseSealed(ServiceRow.self, of: record.recordID)
            default: break
            }
        }
        var row = try self.row(record, sealedIdentity: nil, sealing: !erasing)
        switch sealed {
        case .keep:
            if let secret = current.secret.map(Array.init) {
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
        try row.update(in: self.sql, replacing: current.indexed)
        if current.record.map({ !record.hasSameReportFacts(as: $0) }) ?? true {
            try self.replaceFacts(record.reportFacts, of: R.recordKind, id: record.recordID)
        }
        self.journal.loaded[loadedKey] = (row.version, row.secret, row.indexed, record)
        self.journaled(row, version: record.recordVersion)
        try self.appendRows(appended, to: record)
    }

    /// A record's reference (its alias: a case's reference, an office's
    /// code) is unique within its kind: another record holds it.
    static func referenceTaken(_ kind: RecordKind) -> HavenError {
        HavenError(code: .alreadyExists, message: "a \(kind.rawValue) with that reference already exists")
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

    /// Notes a record row written, for the transaction's audit entry.
    func journaled(_ row: RecordRow, version: UInt64) {
        self.journal.wrote(
            kind: row.kind,
            id: row.id,
            office: row.officeCode,
            version: version,
            hash: Self.storedHash(row)
        )
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
            // A case's sealed fields are its events' notes, and the rows this
            // write appended to its timeline hold them, sealed: the entry keeps
            // each event's place, and a read takes the note from its row
            // (`restoreNotes(of:)`). No second box, and no entry for erasure to
            // find in the index of entries with sealed fields.
            if kind == .caseRecord { return nil }
            // The record's row was just written with these very fields: the same box serves.
            if let last = self.journal.lastSealed, last.key == "\(kind.rawValue)/\(id)/\(version)" {
                return last.box
            }
            return try self.sealFields(fields, kind: kind, id: id, office: office, version: version)
        }
        let inserted = try self.sql.insertOne(
            """
            INSERT INTO change (committedAt, officeCode, partnerID, survivorID, body, recordKind, recordID, sealed)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                entry.event.committedAtUnixMs, entry.officeCode, entry.partnerID, entry.survivorID, body,
                subject?.0.rawValue, subject?.1, sealed.map { Data($0) },
            ],
            assigningKey: "sequence"
        )
        let sequence = UInt64(inserted)
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
        var entries = try self.sql.rows(
            """
            SELECT sequence, officeCode, partnerID, survivorID, body, sealed FROM change
            WHERE sequence > ? ORDER BY sequence LIMIT ?
            """,
            [Int64(clamping: sequence), limit]
        ).map { row in
            let sequence = UInt64(try row["sequence"] as Int64)
            var event: Haven_V1_ChangeEvent
            do {
                event = try Haven_V1_ChangeEvent(wireBytes: try row["body"] as Data)
            } catch {
                throw HavenError(code: .dataLoss, message: "change \(sequence) cannot be decoded")
            }
            if let sealed = (try row["sealed"] as Data?).map(Array.init) {
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
                officeCode: try row["officeCode"],
                partnerID: try row["partnerID"],
                survivorID: try row["survivorID"]
            )
        }
        try self.restoreNotes(of: &entries)
        return entries
    }

    func latestChangeSequence() throws -> UInt64 {
        UInt64(try self.sql.value(Int64.self, "SELECT COALESCE(MAX(sequence), 0) FROM change") ?? 0)
    }

    // MARK: Counters, idempotency

    func nextCounterValue(_ name: String) throws -> UInt64 {
        guard
            let value = try self.sql.value(
                Int64.self,
                """
                INSERT INTO counter (name, value) VALUES (?, 1)
                ON CONFLICT(name) DO UPDATE SET value = counter.value + 1 RETURNING value
                """,
                [name]
            )
        else {
            throw HavenError(code: .internal, message: "counter \(name) returned no value")
        }
        return UInt64(value)
    }

    func idempotencyRecord(principalID: String, key: String) throws -> IdempotencyRecord? {
        try self.sql.row(
            """
            SELECT principalID, key, method, requestDigest, resultID, createdAt FROM idempotency
            WHERE principalID = ? AND key = ?
            """,
            [principalID, key]
        ).map { row in
            IdempotencyRecord(
                principalID: try row["principalID"],
                key: try row["key"],
                method: try row["method"],
                requestDigest: Array(try row["requestDigest"] as Data),
                resultID: try row["resultID"],
                createdAtUnixMs: try row["createdAt"]
            )
        }
    }

    func recordIdempotency(_ record: IdempotencyRecord) throws {
        try self.sql.execute(
            """
            INSERT INTO idempotency (principalID, key, method, requestDigest, resultID, createdAt)
            VALUES (?, ?, ?, ?, ?, ?)
            """,
            [
                record.principalID, record.key, record.method, Data(record.requestDigest), record.resultID,
                record.createdAtUnixMs,
            ]
        )
    }

    // MARK: Accounts, office keys

    func account(id: String) throws -> Account? {
        if let known = self.group?.accounts[id] { return known }
        let account = try self.sql.row("\(Self.accountColumns) WHERE id = ?", [id]).map(Self.account)
        self.group?.accounts[id] = .some(account)
        return account
    }

    func accounts() throws -> [Account] {
        try self.sql.rows("\(Self.accountColumns) ORDER BY id").map(Self.account)
    }

    func accounts(after: String, role: Haven_V1_Role?, limit: Int) throws -> [Account] {
        var arguments: [any SQLBindable] = [after]
        if let role { arguments.append(role.rawValue) }
        arguments.append(limit)
        return try self.sql.rows(
            "\(Self.accountColumns) WHERE id > ?\(role == nil ? "" : " AND role = ?") ORDER BY id LIMIT ?",
            arguments
        ).map(Self.account)
    }

    private static let accountColumns =
        "SELECT id, displayName, role, officeCodes, partnerID, enabled, createdAt FROM account"

    static func account(_ row: SQLRow) throws -> Account {
        let codes: String = try row["officeCodes"]
        return Account(
            id: try row["id"],
            displayName: try row["displayName"],
            role: Haven_V1_Role(rawValue: try row["role"]) ?? .unspecified,
            officeCodes: codes.split(separator: ",").map(String.init),
            partnerID: try row["partnerID"],
            enabled: try row["enabled"],
            createdAtUnixMs: try row["createdAt"]
        )
    }

    func accountRevision() throws -> UInt64 {
        UInt64(
            try self.sql.value(Int64.self, "SELECT value FROM counter WHERE name = ?", [Self.accountRevisionCounter])
                ?? 0
        )
    }

    static let accountRevisionCounter = StoreCounters.accountRevision

    func saveAccount(_ account: Account) throws {
        // Read again after this (a new account's creation time is its own; a saved one keeps the stored one).
        self.group?.accounts[account.id] = nil
        _ = try self.nextCounterValue(Self.accountRevisionCounter)
        self.journal.wrote(kind: "account", id: account.id, office: nil, version: 0, hash: Self.accountHash(account))
        try self.sql.execute(
            """
            INSERT INTO account (id, displayName, role, officeCodes, partnerID, enabled, createdAt)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(id) DO UPDATE SET displayName = excluded.displayName, role = excluded.role,
                officeCodes = excluded.officeCodes, partnerID = excluded.partnerID, enabled = excluded.enabled
            """,
            [
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
