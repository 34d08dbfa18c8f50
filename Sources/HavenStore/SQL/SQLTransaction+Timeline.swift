import Crypto
import Foundation
import HavenProtocol

/// A row of the `caseEvent` table: one event of a case's timeline
/// (``SequencedRow``; its sealed text is a note's).
struct CaseEventRow: SequencedRow {
    static let table = "caseEvent"
    static let ownerColumn = "caseID"
    static let dayColumn = "occurredOn"
    static let sealingKind: RecordKind? = .caseRecord
    static let hashDomain = "haven.v1 case event"
    static let keepsAuditSequence = true
    static let statements = SequencedStatements(Self.self)

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

    var ownerID: String { self.caseID }
    var day: String? { self.occurredOn }

    init(ownerID: String, sequence: Int64, id: String, officeCode: String, day: String?, kind: Int, body: Data) {
        self.caseID = ownerID
        self.sequence = sequence
        self.id = id
        self.officeCode = officeCode
        self.occurredOn = day
        self.kind = kind
        self.body = body
    }
}

extension SQLTransaction {
    /// Stores the events a case change appended, after those stored: each
    /// must continue the timeline (sequence one past the last), and the case's
    /// `event_count` must then equal the last. Notes are sealed under the
    /// case's own key, bound to the event's place in the timeline.
    func appendEvents(_ events: [Haven_V1_CaseEvent], to head: Haven_V1_Case) throws {
        guard !events.isEmpty else { return }
        var last = try self.lastSequence(CaseEventRow.self, of: head.id)
        var statusChanges: [ReportFact] = []
        for var event in events {
            guard event.sequence == last + 1 else {
                throw HavenError(
                    code: .internal,
                    message: "a timeline event of case \(head.id) out of sequence (\(event.sequence) after \(last))"
                )
            }
            last = event.sequence
            var note = ""
            if case .note(var detail) = event.detail {
                note = detail.text
                detail.text = ""
                event.detail = .note(detail)
            }
            let row = CaseEventRow(
                ownerID: head.id,
                sequence: Int64(last),
                id: event.id,
                officeCode: head.officeCode,
                day: dayString(event.occurredOn),
                kind: CaseEventKind(event.detail)?.rawValue ?? 0,
                body: event.serializedPayload()
            )
            try self.insert(row, sealing: note)
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

    /// Puts back the notes of the cases that change-log entries hold: an
    /// entry keeps the events its write appended without their notes' text,
    /// which their timeline rows hold, sealed (``appendChange(_:)``). One
    /// statement for a page of entries (a round trip to PostgreSQL). Entries
    /// written before that kept the notes in a box of their own, opened
    /// before this; a note erased since is empty in both.
    ///
    /// - Throws: DATA_LOSS when an event has no timeline row at its place.
    func restoreNotes(of changes: inout [ChangeEntry]) throws {
        var missing: [(change: Int, event: Int)] = []
        for change in changes.indices {
            guard case .caseRecord(let record) = changes[change].event.subject else { continue }
            for event in record.events.indices {
                if case .note(let note) = record.events[event].detail, note.text.isEmpty {
                    missing.append((change, event))
                }
            }
        }
        guard !missing.isEmpty else { return }
        var stored: [String: Haven_V1_CaseEvent] = [:]
        // A few hundred places a statement at most.
        for start in stride(from: 0, to: missing.count, by: 300) {
            let chunk = missing[start..<min(missing.count, start + 300)]
            var places: [String] = []
            var arguments: [any SQLBindable] = []
            for (change, event) in chunk {
                places.append("(caseID = ? AND sequence = ?)")
                let record = changes[change].event.caseRecord
                arguments += [record.id, Int64(record.events[event].sequence)]
            }
            let sql = "\(CaseEventRow.select) WHERE \(places.joined(separator: " OR "))"
            for selected in try self.sql.rows(sql, arguments) {
                let row = try CaseEventRow(selected)
                stored["\(row.caseID)/\(row.sequence)"] = try self.decode(row)
            }
        }
        for (change, index) in missing {
            let record = changes[change].event.caseRecord
            let event = record.events[index]
            guard let row = stored["\(record.id)/\(event.sequence)"], row.id == event.id else {
                throw HavenError(
                    code: .dataLoss,
                    message: "case \(record.id)'s event \(event.sequence) has no timeline row for its change"
                )
            }
            guard case .note(let note) = row.detail else { continue }
            changes[change].event.caseRecord.events[index].detail = .note(note)
        }
    }

    func decode(_ row: CaseEventRow) throws -> Haven_V1_CaseEvent {
        var event: Haven_V1_CaseEvent
        do {
            event = try Haven_V1_CaseEvent(wireBytes: row.body)
        } catch {
            throw HavenError(code: .dataLoss, message: "stored event \(row.resourceID) cannot be decoded")
        }
        if row.sealed != nil, case .note(var note) = event.detail {
            note.text = try self.openSealed(row)
            event.detail = .note(note)
        }
        return event
    }

    /// A record as given, split: its record without what it appended (a
    /// case's events and its accused's status changes, a survivor's
    /// services), and what it appended. Other records pass unchanged.
    static func splitAppended<R: StoredRecord>(_ record: R) -> (R, AppendedRows) {
        if var head = record as? Haven_V1_Case,
            !head.events.isEmpty || head.accused.contains(where: { !$0.history.isEmpty })
        {
            let events = head.takeAppendedEvents()
            let changes = head.takeStatusChanges()
            return (head as! R, .caseRows(events: events, statusChanges: changes))
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
        case .caseRows(let events, let changes):
            let head = record as! Haven_V1_Case
            try self.appendEvents(events, to: head)
            try self.appendStatusChanges(changes, to: head)
        case .services(let services): try self.appendServices(services, to: record as! Haven_V1_Survivor)
        }
    }
}

/// What a change appended to a record's append-only rows.
enum AppendedRows {
    case none
    /// A case's timeline events and its accused's status changes.
    case caseRows(events: [Haven_V1_CaseEvent], statusChanges: [AccusedStatusChanges])
    /// A survivor's services.
    case services([Haven_V1_ServiceRecord])
}
