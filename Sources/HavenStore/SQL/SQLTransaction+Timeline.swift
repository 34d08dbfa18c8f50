import Crypto
import Foundation
import HavenProtocol

/// A row of the `caseEvent` table: one event of a case's timeline.
///
/// Events are append-only: a row is written once, when its event is
/// appended, and changed only by an erasure (which drops its sealed note).
struct CaseEventRow {
    var caseID: String
    var sequence: Int64
    var id: String
    var officeCode: String
    /// `YYYY-MM-DD`: when it happened (reports select by it).
    var occurredOn: String?
    /// ``CaseEventKind``: the field number of its detail.
    var kind: Int
    /// The event without its note's text.
    var body: Data
    /// The note's text, sealed under the case's key.
    var sealed: Data?

    /// The audit trail's name for it: `caseEvent/<case id>/<sequence>`.
    var resourceID: String { "\(self.caseID)/\(self.sequence)" }

    /// `SELECT` of every column, in the order ``init(_:)`` reads them.
    static let select = "SELECT caseID, sequence, id, officeCode, occurredOn, kind, body, sealed FROM caseEvent"

    /// Reads a row selected by ``select``.
    init(_ row: SQLRow) throws {
        self.init(
            caseID: try row[0],
            sequence: try row[1],
            id: try row[2],
            officeCode: try row[3],
            occurredOn: try row[4],
            kind: try row[5],
            body: try row[6],
            sealed: try row[7]
        )
    }

    init(
        caseID: String,
        sequence: Int64,
        id: String,
        officeCode: String,
        occurredOn: String?,
        kind: Int,
        body: Data,
        sealed: Data?
    ) {
        self.caseID = caseID
        self.sequence = sequence
        self.id = id
        self.officeCode = officeCode
        self.occurredOn = occurredOn
        self.kind = kind
        self.body = body
        self.sealed = sealed
    }
}

extension SQLTransaction {
    static let caseEventKind = "caseEvent"

    /// Stores the events a case change appended, after those stored: each
    /// must continue the timeline (sequence one past the last), and the case's
    /// `event_count` must then equal the last. Notes are sealed under the
    /// case's own key, bound to the event's place in the timeline.
    func appendEvents(_ events: [Haven_V1_CaseEvent], to head: Haven_V1_Case) throws {
        guard !events.isEmpty else { return }
        var last = UInt32(
            clamping: try self.sql.value(
                Int64.self,
                "SELECT COALESCE(MAX(sequence), 0) FROM caseEvent WHERE caseID = ?",
                [head.id]
            ) ?? 0
        )
        var statusChanges: [ReportFact] = []
        for var event in events {
            guard event.sequence == last + 1 else {
                throw HavenError(
                    code: .internal,
                    message: "a timeline event of case \(head.id) out of sequence (\(event.sequence) after \(last))"
                )
            }
            last = event.sequence
            var sealed: Data?
            if case .note(var note) = event.detail, !note.text.isEmpty {
                sealed = Data(try self.sealNote(note.text, caseID: head.id, sequence: last, office: head.officeCode))
                note.text = ""
                event.detail = .note(note)
            }
            let row = CaseEventRow(
                caseID: head.id,
                sequence: Int64(last),
                id: event.id,
                officeCode: head.officeCode,
                occurredOn: dayString(event.occurredOn),
                kind: CaseEventKind(event.detail)?.rawValue ?? 0,
                body: event.serializedPayload(),
                sealed: sealed
            )
            try self.sql.execute(
                """
                INSERT INTO caseEvent (caseID, sequence, id, officeCode, occurredOn, kind, body, sealed)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [row.caseID, row.sequence, row.id, row.officeCode, row.occurredOn, row.kind, row.body, row.sealed]
            )
            self.journaled(row)
            if let fact = ReportFact.caseStatus(event, officeCode: head.officeCode) { statusChanges.append(fact) }
        }
        try self.insertFacts(statusChanges, of: .caseRecord, id: head.id)
        guard head.eventCount == last else {
            throw HavenError(
                code: .internal,
                message: "case \(head.id) counts \(head.eventCount) events, its timeline ends at \(last)"
            )
        }
    }

    /// Drops the sealed notes of a case's events (an erasure: the case's key
    /// is gone, and so is every box it sealed).
    func eraseEventNotes(caseID: String) throws {
        let rows = try self.sql.rows(
            "\(CaseEventRow.select) WHERE caseID = ? AND sealed IS NOT NULL ORDER BY sequence",
            [caseID]
        ).map(CaseEventRow.init)
        for var row in rows {
            row.sealed = nil
            try self.sql.execute(
                "UPDATE caseEvent SET sealed = NULL WHERE caseID = ? AND sequence = ?",
                [row.caseID, row.sequence]
            )
            self.journaled(row)
        }
    }

    func caseEvents(_ query: CaseEventQuery) throws -> [StoredCaseEvent] {
        var conditions = SQLConditions()
        if let caseID = query.caseID {
            conditions.add("caseID = ? AND sequence > ?", caseID, Int64(query.afterSequence))
        }
        if let office = query.officeCode { conditions.add("officeCode = ?", office) }
        if let from = query.occurredFrom { conditions.add("occurredOn >= ?", from) }
        if let through = query.occurredThrough { conditions.add("occurredOn <= ?", through) }
        if let kinds = query.kinds { conditions.among("kind", kinds.map(\.rawValue)) }
        let direction = query.newestFirst ? "DESC" : "ASC"
        let order = query.caseID != nil ? "sequence \(direction)" : "caseID, sequence \(direction)"
        let sql = "\(CaseEventRow.select) \(conditions.sql) ORDER BY \(order) LIMIT ?"
        let arguments = conditions.arguments + [max(0, query.limit)]
        return try self.sql.rows(sql, arguments).map { selected in
            let row = try CaseEventRow(selected)
            return StoredCaseEvent(caseID: row.caseID, event: try self.decode(row))
        }
    }

    func decode(_ row: CaseEventRow) throws -> Haven_V1_CaseEvent {
        var event: Haven_V1_CaseEvent
        do {
            event = try Haven_V1_CaseEvent(wireBytes: row.body)
        } catch {
            throw HavenError(code: .dataLoss, message: "stored event \(row.resourceID) cannot be decoded")
        }
        if let sealed = row.sealed, case .note(var note) = event.detail {
            note.text = try self.openNote(
                Array(sealed),
                caseID: row.caseID,
                sequence: UInt32(clamping: row.sequence),
                office: row.officeCode
            )
            event.detail = .note(note)
        }
        return event
    }

    private static func noteContext(_ caseID: String, _ sequence: UInt32, _ office: String) -> String {
        SealBox.fieldsContext(Self.caseEventKind, "\(caseID)/\(sequence)", office, version: 1)
    }

    /// The case's own key, which seals its events' notes.
    private func caseKey(_ caseID: String, office: String, create: Bool) throws -> SymmetricKey? {
        try self.recordKey(kind: RecordKind.caseRecord.rawValue, id: caseID, office: office, create: create)
    }

    private func sealNote(_ text: String, caseID: String, sequence: UInt32, office: String) throws -> [UInt8] {
        guard let key = try self.caseKey(caseID, office: office, create: true) else {
            throw HavenError(code: .failedPrecondition, message: "the store holds no keys to seal a case note with")
        }
        return try SealBox.seal(Array(text.utf8), key: key, context: Self.noteContext(caseID, sequence, office))
    }

    private func openNote(_ sealed: [UInt8], caseID: String, sequence: UInt32, office: String) throws -> String {
        guard let key = try self.caseKey(caseID, office: office, create: false) else {
            throw HavenError(code: .dataLoss, message: "a sealed note of case \(caseID) has no key")
        }
        do {
            let plaintext = try SealBox.open(sealed, key: key, context: Self.noteContext(caseID, sequence, office))
            return String(decoding: plaintext, as: UTF8.self)
        } catch {
            throw HavenError(
                code: .dataLoss,
                message: "the sealed note of event \(sequence) of case \(caseID) does not open (moved?)"
            )
        }
    }

    /// Notes an event row written, for the transaction's audit entry
    /// (`caseEvent/<case>/<sequence>`; events have no versions of their own).
    func journaled(_ row: CaseEventRow) {
        self.journal.wrote(
            kind: Self.caseEventKind,
            id: row.resourceID,
            office: row.officeCode,
            version: 1,
            hash: Self.storedHash(row)
        )
    }

    /// What the audit trail commits to for an event: every column.
    static func storedHash(_ row: CaseEventRow) -> [UInt8] {
        var hasher = StoredHasher("haven.v1 case event")
        hasher.add(row.caseID)
        hasher.add(row.sequence)
        hasher.add(row.id)
        hasher.add(row.officeCode)
        hasher.add(row.occurredOn)
        hasher.add(Int64(row.kind))
        hasher.add(row.body)
        hasher.add(row.sealed)
        return hasher.finalize()
    }

    /// Every event's stored hash, keyed `caseEvent/<case id>/<sequence>`.
    func caseEventHashes(into hashes: inout [String: [UInt8]]) throws {
        try self.sql.forEachRow(CaseEventRow.select, []) { selected in
            let row = try CaseEventRow(selected)
            hashes["\(Self.caseEventKind)/\(row.resourceID)"] = Self.storedHash(row)
        }
    }

    /// A record as given, split: its record without what it appended (a
    /// case's events, a survivor's services), and what it appended. Other
    /// records pass unchanged.
    static func splitAppended<R: StoredRecord>(_ record: R) -> (R, AppendedRows) {
        if var head = record as? Haven_V1_Case, !head.events.isEmpty {
            let events = head.takeAppendedEvents()
            return (head as! R, .events(events))
        }
        if var head = record as? Haven_V1_Survivor, !head.services.isEmpty {
            let services = head.takeRecordedServices()
            return (head as! R, .services(services))
        }
        return (record, .none)
    }

    /// Stores the rows a change appended, after its record.
    func appendRows<R: StoredRecord>(_ appended: AppendedRows, to record: R) throws {
        switch appended {
        case .none: break
        case .events(let events): try self.appendEvents(events, to: record as! Haven_V1_Case)
        case .services(let services): try self.appendServices(services, to: record as! Haven_V1_Survivor)
        }
    }
}

/// What a change appended to a record's append-only rows.
enum AppendedRows {
    case none
    /// A case's timeline events.
    case events([Haven_V1_CaseEvent])
    /// A survivor's services.
    case services([Haven_V1_ServiceRecord])
}
