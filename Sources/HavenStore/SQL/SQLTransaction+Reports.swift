import Foundation
import HavenProtocol

/// The `reportFact` table: the dated facts of cases and survivors that
/// reports count (``ReportFact``), kept by the store with what they come from,
/// and the aggregate queries a report is made of.
extension SQLTransaction {
    /// The columns of `reportFact`, in the order ``insertFacts(_:of:id:)`` binds them.
    private static let factColumns = [
        "recordKind", "recordID", "fact", "position", "officeCode", "category", "prior", "subject", "fromDay",
        "throughDay",
    ]

    /// Inserts facts of a record, in one statement (a few hundred at most:
    /// a record holds at most ``HavenLimits/maxRecordBytes``).
    func insertFacts(_ facts: [ReportFact], of kind: RecordKind, id: String) throws {
        try self.insertFacts(facts, owner: FactOwner(kind: kind.rawValue, id: id))
    }

    /// Inserts facts of `owner` (a record, or an accused: ``ReportFact/accusedOwnerKind``).
    func insertFacts(_ facts: [ReportFact], owner: FactOwner) throws {
        guard !facts.isEmpty else { return }
        let row = "(\(Self.placeholders(Self.factColumns.count)))"
        // 10 arguments a row: 2,000 rows stay far below both databases' limits on arguments.
        for chunk in stride(from: 0, to: facts.count, by: 2_000) {
            let part = facts[chunk..<min(facts.count, chunk + 2_000)]
            var arguments: [any SQLBindable] = []
            arguments.reserveCapacity(part.count * Self.factColumns.count)
            for fact in part {
                arguments +=
                    [
                        owner.kind, owner.id, fact.kind.rawValue, fact.position, fact.officeCode, fact.category,
                        fact.prior,
                        fact.subject, fact.fromDay, fact.throughDay,
                    ] as [any SQLBindable]
            }
            try self.sql.execute(
                "INSERT INTO reportFact (\(Self.factColumns.joined(separator: ", "))) VALUES "
                    + Array(repeating: row, count: part.count).joined(separator: ", "),
                arguments
            )
        }
    }

    /// Replaces the facts a record holds (not its case's status changes nor
    /// its survivor's services, which come from rows of their own) with `facts`.
    func replaceFacts(_ facts: [ReportFact], of kind: RecordKind, id: String) throws {
        try self.sql.execute(
            "DELETE FROM reportFact WHERE recordKind = ? AND recordID = ? AND fact NOT IN (?, ?)",
            [kind.rawValue, id, ReportFact.Kind.caseStatus.rawValue, ReportFact.Kind.service.rawValue]
        )
        try self.insertFacts(facts, of: kind, id: id)
    }

    /// Writes the facts of the records and timelines stored before facts had
    /// rows of their own, once, when a store is first opened after the
    /// `v5-report-facts` migration marked them pending (in the transaction
    /// that migrated it). Facts come from the unsealed bodies: no key is needed.
    static func fillReportFacts(_ tx: SQLTransaction) throws {
        guard try tx.sql.value(String.self, "SELECT value FROM meta WHERE name = 'report-facts'") == "pending"
        else { return }
        for (owner, facts) in try tx.statedFacts().sorted(by: { ($0.key.kind, $0.key.id) < ($1.key.kind, $1.key.id) }) {
            try tx.insertFacts(facts, owner: owner)
        }
        try tx.sql.execute("UPDATE meta SET value = 'rows' WHERE name = 'report-facts'")
    }

    /// What facts are kept of: a record (its kind and id), or an accused
    /// (``ReportFact/accusedOwnerKind`` and its id).
    struct FactOwner: Hashable {
        var kind: String
        var id: String
    }

    /// The facts the stored records and rows state (what the store writes
    /// beside them): each case's status changes (from its timeline rows),
    /// each accused's status changes (from their rows, or from the case's
    /// record before the move), each survivor's placements and services
    /// (from its service rows). From the unsealed bodies: no key is needed.
    func statedFacts() throws -> [FactOwner: [ReportFact]] {
        var facts: [FactOwner: [ReportFact]] = [:]
        try self.sql.forEachRow(
            "SELECT kind, id, body FROM record WHERE kind IN ('case', 'survivor') ORDER BY kind, id",
            []
        ) { row in
            let kind: String = try row[0]
            let id: String = try row[1]
            let body: Data = try row[2]
            do {
                facts[FactOwner(kind: kind, id: id)] =
                    kind == RecordKind.caseRecord.rawValue
                    ? try Haven_V1_Case(wireBytes: body).reportFacts
                    : try Haven_V1_Survivor(wireBytes: body).reportFacts
            } catch {
                throw HavenError(code: .dataLoss, message: "stored \(kind) \(id) cannot be decoded")
            }
        }
        try self.sql.forEachRow(
            "\(CaseEventRow.select) WHERE kind = ? ORDER BY caseID, sequence",
            [CaseEventKind.statusChanged.rawValue]
        ) { selected in
            let row = try CaseEventRow(selected)
            guard let event = try? Haven_V1_CaseEvent(wireBytes: row.body) else {
                throw HavenError(code: .dataLoss, message: "stored event \(row.resourceID) cannot be decoded")
            }
            if let fact = ReportFact.caseStatus(event, officeCode: row.officeCode) {
                facts[FactOwner(kind: RecordKind.caseRecord.rawValue, id: row.caseID), default: []].append(fact)
            }
        }
        try self.sql.forEachRow("\(ServiceRow.select) ORDER BY survivorID, sequence", []) { selected in
            let row = try ServiceRow(selected)
            guard var service = try? Haven_V1_ServiceRecord(wireBytes: row.body) else {
                throw HavenError(code: .dataLoss, message: "stored service \(row.resourceID) cannot be decoded")
            }
            service.sequence = UInt32(clamping: row.sequence)
            facts[FactOwner(kind: RecordKind.survivor.rawValue, id: row.survivorID), default: []].append(
                ReportFact.service(service, officeCode: row.officeCode)
            )
        }
        try self.sql.forEachRow("\(AccusedStatusRow.select) ORDER BY accusedID, sequence", []) { selected in
            let row = try AccusedStatusRow(selected)
            let change = try self.decode(row)
            facts[FactOwner(kind: ReportFact.accusedOwnerKind, id: row.accusedID), default: []].append(
                ReportFact.accusedStatus(change, accusedID: row.accusedID, officeCode: row.officeCode)
            )
        }
        return facts.filter { !$0.value.isEmpty }
    }

    /// The records whose stored facts differ from what their records and
    /// rows state (`<kind>/<id>`, sorted; at most `limit`): a fact edited,
    /// inserted or deleted in the database, which changes a report without
    /// touching any audited row.
    func reportFactDifferences(limit: Int) throws -> [String] {
        var stored: [FactOwner: [ReportFact: Int]] = [:]
        // A fact of a kind no software writes: its record differs, whatever else it holds.
        var unknown = Set<FactOwner>()
        try self.sql.forEachRow(
            "SELECT \(Self.factColumns.joined(separator: ", ")) FROM reportFact",
            []
        ) { row in
            let owner = FactOwner(kind: try row[0], id: try row[1])
            guard let kind = ReportFact.Kind(rawValue: Int(try row[2] as Int64)) else {
                unknown.insert(owner)
                return
            }
            let fact = ReportFact(
                kind: kind,
                position: Int(try row[3] as Int64),
                officeCode: try row[4],
                category: Int(try row[5] as Int64),
                prior: Int(try row[6] as Int64),
                subject: try row[7],
                fromDay: try row[8],
                throughDay: try row[9]
            )
            stored[owner, default: [:]][fact, default: 0] += 1
        }
        var differing: [String] = []
        let stated = try self.statedFacts()
        for owner in Set(stated.keys).union(stored.keys).union(unknown) {
            let expected = (stated[owner] ?? []).reduce(into: [ReportFact: Int]()) { $0[$1, default: 0] += 1 }
            if unknown.contains(owner) || expected != (stored[owner] ?? [:]) {
                differing.append("\(owner.kind)/\(owner.id)")
            }
        }
        return Array(differing.sorted().prefix(limit))
    }

    func officeFigures(_ query: OfficeFiguresQuery) throws -> OfficeFigures {
        let office = query.officeCode
        let (first, last) = (query.firstDay, query.lastDay)
        let (caseKind, survivorKind) = (RecordKind.caseRecord.rawValue, RecordKind.survivor.rawValue)
        var figures = OfficeFigures()
        let opened = "SELECT COUNT(*) FROM record WHERE kind = ? AND officeCode = ? AND day >= ? AND day <= ?"
        figures.casesOpened = try self.sql.value(Int64.self, opened, [caseKind, office, first, last]) ?? 0
        figures.survivorsRegistered = try self.sql.value(Int64.self, opened, [survivorKind, office, first, last]) ?? 0

        // A case's status at the period's end: set by its last status change
        // (in timeline order) on or before it; before its first change, what
        // that change changed from; without changes, its status now.
        let status = ReportFact.Kind.caseStatus.rawValue
        for row in try self.sql.rows(
            """
            SELECT COALESCE(
                (SELECT f.category FROM reportFact f
                    WHERE f.recordKind = r.kind AND f.recordID = r.id AND f.fact = ? AND f.fromDay <= ?
                    ORDER BY f.position DESC LIMIT 1),
                (SELECT f.prior FROM reportFact f
                    WHERE f.recordKind = r.kind AND f.recordID = r.id AND f.fact = ?
                    ORDER BY f.position LIMIT 1),
                r.status) AS statusAtEnd, COUNT(*)
            FROM record r
            WHERE r.kind = ? AND r.officeCode = ? AND (r.day IS NULL OR r.day <= ?)
            GROUP BY statusAtEnd
            """,
            [status, last, status, caseKind, office, last]
        ) {
            figures.casesByStatus[Int(try row[0] as Int64), default: 0] += try row[1] as Int64
        }

        // An accused's status at the period's end: the last entry of their
        // history in effect on or before it (facts owned by the accused, or
        // by the case while its record still holds the history).
        let accused = ReportFact.Kind.accusedStatus.rawValue
        for row in try self.sql.rows(
            """
            SELECT f.category, COUNT(*) FROM reportFact f
            WHERE f.officeCode = ? AND f.fact = ? AND f.recordKind IN (?, ?) AND f.fromDay <= ?
                AND NOT EXISTS (
                    SELECT 1 FROM reportFact g
                    WHERE g.recordKind = f.recordKind AND g.recordID = f.recordID AND g.fact = f.fact
                        AND g.subject = f.subject AND g.fromDay <= ? AND g.position > f.position)
            GROUP BY f.category
            """,
            [office, accused, ReportFact.accusedOwnerKind, caseKind, last, last]
        ) {
            figures.accusedByStatus[Int(try row[0] as Int64), default: 0] += try row[1] as Int64
        }

        figures.survivorsInAftercare =
            try self.sql.value(
                Int64.self,
                """
                SELECT COUNT(DISTINCT recordID) FROM reportFact
                WHERE officeCode = ? AND fact = ? AND recordKind = ? AND fromDay <= ?
                    AND (throughDay IS NULL OR throughDay >= ?)
                """,
                [office, ReportFact.Kind.placement.rawValue, survivorKind, last, last]
            ) ?? 0

        for row in try self.sql.rows(
            """
            SELECT category, COUNT(*), COUNT(DISTINCT recordID) FROM reportFact
            WHERE officeCode = ? AND fact = ? AND recordKind = ? AND fromDay >= ? AND fromDay <= ?
            GROUP BY category
            """,
            [office, ReportFact.Kind.service.rawValue, survivorKind, first, last]
        ) {
            figures.services[Int(try row[0] as Int64)] = (try row[1], try row[2])
        }
        return figures
    }
}
