import Foundation
import HavenProtocol

/// A row of the `accusedStatus` table: one change of an accused person's
/// legal status (``SequencedRow``, owned by the accused, whose id is unique
/// in a deployment; its `id` is the timeline event that made the change, ""
/// for the status the accused was added with).
///
/// A status change holds nothing sealed: its status, day and event are as
/// open as the case record's own fields (``sealingKind`` nil: text given
/// to seal is refused, and a sealed box found on a row does not decode).
struct AccusedStatusRow: SequencedRow {
    static let table = "accusedStatus"
    static let ownerColumn = "accusedID"
    static let dayColumn = "effectiveOn"
    static let sealingKind: RecordKind? = nil
    static let hashDomain = "haven.v1 accused status"
    static let statements = SequencedStatements(Self.self)

    var accusedID: String
    var sequence: Int64
    var id: String
    var officeCode: String
    /// `YYYY-MM-DD`: when it took effect.
    var effectiveOn: String?
    /// ``Haven_V1_AccusedLegalStatus``'s value.
    var kind: Int
    /// The change as the wire carries it.
    var body: Data
    /// Always nil.
    var sealed: Data?

    var ownerID: String { self.accusedID }
    var day: String? { self.effectiveOn }

    init(ownerID: String, sequence: Int64, id: String, officeCode: String, day: String?, kind: Int, body: Data) {
        self.accusedID = ownerID
        self.sequence = sequence
        self.id = id
        self.officeCode = officeCode
        self.effectiveOn = day
        self.kind = kind
        self.body = body
    }
}

extension SQLTransaction {
    /// Stores the status changes a case change made, after those stored:
    /// each must continue its accused's history (sequence one past the last),
    /// and the accused's `history_count` must then equal the last. Each
    /// change's report fact is written with it, owned by the accused.
    func appendStatusChanges(_ written: [AccusedStatusChanges], to head: Haven_V1_Case) throws {
        for accused in written {
            var last = try self.lastSequence(AccusedStatusRow.self, of: accused.accusedID)
            var facts: [ReportFact] = []
            for change in accused.changes {
                guard change.sequence == last + 1 else {
                    throw HavenError(
                        code: .internal,
                        message:
                            "a status change of accused \(accused.accusedID) out of sequence (\(change.sequence) after \(last))"
                    )
                }
                last = change.sequence
                let row = AccusedStatusRow(
                    ownerID: accused.accusedID,
                    sequence: Int64(last),
                    id: change.eventID,
                    officeCode: head.officeCode,
                    day: dayString(change.effectiveOn),
                    kind: change.status.rawValue,
                    body: change.serializedPayload()
                )
                try self.insert(row, sealing: "")
                facts.append(
                    ReportFact.accusedStatus(change, accusedID: accused.accusedID, officeCode: head.officeCode)
                )
            }
            try self.insertFacts(facts, owner: FactOwner(kind: ReportFact.accusedOwnerKind, id: accused.accusedID))
            guard accused.historyCount == last else {
                throw HavenError(
                    code: .internal,
                    message: "accused \(accused.accusedID) counts \(accused.historyCount) changes, its last is \(last)"
                )
            }
        }
    }

    func accusedHistory(_ query: AccusedHistoryQuery) throws -> [String: [Haven_V1_AccusedStatusChange]] {
        var history: [String: [Haven_V1_AccusedStatusChange]] = [:]
        guard query.limit > 0 else { return history }
        let direction = query.newestFirst ? "DESC" : "ASC"
        // One statement for up to 100 accused: each its own ordered, limited part.
        for chunk in stride(from: 0, to: query.accusedIDs.count, by: 100) {
            let ids = query.accusedIDs[chunk..<min(query.accusedIDs.count, chunk + 100)]
            let parts = ids.indices.map { index in
                """
                SELECT * FROM (\(AccusedStatusRow.select) WHERE accusedID = ? AND sequence > ?
                ORDER BY sequence \(direction) LIMIT ?) AS part\(index)
                """
            }
            var arguments: [any SQLBindable] = []
            for id in ids { arguments += [id, Int64(query.afterSequence), query.limit] as [any SQLBindable] }
            for selected in try self.sql.rows(parts.joined(separator: " UNION ALL "), arguments) {
                let row = try AccusedStatusRow(selected)
                history[row.accusedID, default: []].append(try self.decode(row))
            }
        }
        // Each part is ordered; the parts' union need not keep it.
        for id in history.keys {
            history[id]?.sort { query.newestFirst ? $0.sequence > $1.sequence : $0.sequence < $1.sequence }
        }
        return history
    }

    func decode(_ row: AccusedStatusRow) throws -> Haven_V1_AccusedStatusChange {
        guard row.sealed == nil, let change = try? Haven_V1_AccusedStatusChange(wireBytes: row.body) else {
            throw HavenError(code: .dataLoss, message: "stored status change \(row.resourceID) cannot be decoded")
        }
        return change
    }
}

extension SQLTransaction {
    /// Moves the legal status histories of accused written before they had
    /// rows of their own out of their cases' records, once, when the store is
    /// first opened with its keys after the `v7-accused-history` migration
    /// (either store): each change becomes a row (with its place), each case
    /// is stored again without its accused's histories and with each
    /// accused's `history_count` (same version), its report facts of accused
    /// statuses are written again owned by their accused, and entries
    /// `store.migrate` by `havend` commit to every row written. In the
    /// opening transaction: a failure leaves the database as it was.
    static func moveAccusedHistory(_ tx: SQLTransaction) throws {
        guard tx.keys != nil,
            try tx.sql.value(String.self, "SELECT value FROM meta WHERE name = 'accused-history'") == "in-records"
        else { return }
        var audit = MoveAudit(tx, detail: "accused status histories moved out of their cases into rows of their own")
        try tx.forEachStored(Haven_V1_Case.self) { record, stored in
            var record = record
            guard record.accused.contains(where: { !$0.history.isEmpty }) else { return }
            // Each history's order is its order; `sequence` restates it.
            for index in record.accused.indices {
                for place in record.accused[index].history.indices {
                    record.accused[index].history[place].sequence = UInt32(place + 1)
                }
                record.accused[index].historyCount = UInt32(record.accused[index].history.count)
            }
            let changes = record.takeStatusChanges()
            try tx.restore(record, was: stored)
            // The facts the record held (owned by the case, placed across its accused) now come from the rows.
            try tx.sql.execute(
                "DELETE FROM reportFact WHERE recordKind = 'case' AND recordID = ? AND fact = ?",
                [record.id, ReportFact.Kind.accusedStatus.rawValue]
            )
            try tx.appendStatusChanges(changes, to: record)
            try audit.wrote(1 + changes.reduce(0) { $0 + $1.changes.count })
        }
        try audit.finish()
        try tx.sql.execute("UPDATE meta SET value = 'rows' WHERE name = 'accused-history'")
    }
}
