import Foundation
import HavenProtocol
import SwiftProtobuf

/// The audit trail, as both stores keep it: `audit` (sequence, the entry's
/// canonical bytes and its chain hash, plus columns to search by) and
/// `auditResource` (which entries name which resource).
extension SQLTransaction {
    @discardableResult
    func appendAudit(_ new: NewAuditEntry) throws -> Haven_V1_AuditEntry {
        let (written, changes, hints) = self.journal.take()
        var entry = Haven_V1_AuditEntry()
        entry.atUnixMs = new.atUnixMs
        entry.principalID = new.principalID
        entry.principalRole = new.principalRole
        entry.action = new.action
        entry.outcome = new.outcome
        entry.requestID = new.requestID
        entry.detail = new.detail
        entry.resources = written + new.resources
        entry.changes = changes
        guard self.auditing else { return entry }
        let head = try self.auditHead()
        entry.sequence = UInt64(head.sequence) + 1
        entry.previousHash = head.hash
        let canonical: [UInt8]
        do {
            canonical = try AuditChain.canonicalBytes(entry)
        } catch {
            throw HavenError(code: .internal, message: "could not serialize an audit entry")
        }
        let hash = AuditChain.entryHash(canonical: canonical)
        try self.sql.execute(
            "INSERT INTO audit (sequence, at, principalID, action, outcome, body, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                Int64(entry.sequence), entry.atUnixMs, entry.principalID, entry.action, entry.outcome.rawValue,
                Data(canonical), Data(hash),
            ]
        )
        // A case whose appended timeline row holds this entry's sequence is
        // found by that row (`caseEvent.auditSequence`): no index row of its own.
        var named = Set<String>()
        for resource in entry.resources where resource.kind == CaseEventRow.table {
            if hints[resource.id] == Int64(entry.sequence) {
                let owner = Self.indexed(kind: resource.kind, id: resource.id)
                named.insert("\(owner.kind)/\(owner.id)")
            }
        }
        let rows = entry.resources.map { Self.indexed(kind: $0.kind, id: $0.id) }
            .filter { named.insert("\($0.kind)/\($0.id)").inserted }
        // One statement for the resources an entry names (a few hundred rows a statement at most).
        for start in stride(from: 0, to: rows.count, by: 300) {
            let chunk = rows[start..<min(rows.count, start + 300)]
            try self.sql.execute(
                "INSERT INTO auditResource (kind, id, sequence) VALUES "
                    + Array(repeating: "(?, ?, ?)", count: chunk.count).joined(separator: ", "),
                chunk.flatMap { resource -> [any SQLBindable] in
                    [resource.kind, resource.id, Int64(entry.sequence)]
                }
            )
        }
        self.group?.auditHead = (Int64(entry.sequence), Data(hash))
        entry.entryHash = Data(hash)
        return entry
    }

    var pendingAudit: Bool { self.journal.unaudited }

    /// The audit trail's last entry as this transaction has it (sequence 0
    /// and the zero hash when empty), remembered for the group's next write.
    private func auditHead() throws -> (sequence: Int64, hash: Data) {
        if let known = self.group?.auditHead { return known }
        let head: (sequence: Int64, hash: Data)
        if let last = try self.sql.row("SELECT sequence, hash FROM audit ORDER BY sequence DESC LIMIT 1") {
            head = (try last["sequence"], try last["hash"])
        } else {
            head = (0, Data(AuditChain.zeroHash))
        }
        self.group?.auditHead = head
        return head
    }

    /// The sequence the next audit entry of this transaction will have, nil
    /// when it keeps no audit trail: the one that covers what the write has
    /// written so far (``appendAudit(_:)`` takes everything written since
    /// the last entry).
    func nextAuditSequence() throws -> Int64? {
        guard self.auditing else { return nil }
        return try self.auditHead().sequence + 1
    }

    func auditSize() throws -> UInt64 {
        UInt64(try self.sql.value(Int64.self, "SELECT COALESCE(MAX(sequence), 0) FROM audit") ?? 0)
    }

    /// Where `auditResource` indexes a resource an entry names: a row of a
    /// record's own timeline or services (`caseEvent` `case_…/7`,
    /// `survivorService` `srv_…/3`) under its record (`case` `case_…`,
    /// `survivor` `srv_…`); anything else as it is named. A write that appends
    /// an event names the case and the event, and needs no index row at all:
    /// the event's row holds the entry's sequence (`auditSequence`), and
    /// ``auditEntries(_:)`` finds a case's entries through its rows' too (a
    /// page fewer in each append's commit, docs/BENCHMARKS.md). It finds a
    /// row's entries through its record's index rows and rows, and through
    /// rows indexed as named before this (a database written by an earlier
    /// release).
    static func indexed(kind: String, id: String) -> (kind: String, id: String) {
        guard let owner = Self.partOwners[kind], let slash = id.lastIndex(of: "/"), slash != id.startIndex else {
            return (kind, id)
        }
        let sequence = id[id.index(after: slash)...]
        guard !sequence.isEmpty, sequence.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
        else { return (kind, id) }
        return (owner, String(id[..<slash]))
    }

    /// The resource kinds of rows that belong to a record, and that record's kind.
    static let partOwners: [String: String] = [
        CaseEventRow.table: RecordKind.caseRecord.rawValue,
        ServiceRow.table: RecordKind.survivor.rawValue,
    ]

    func auditEntries(_ query: AuditQuery) throws -> [Haven_V1_AuditEntry] {
        var conditions = SQLConditions()
        conditions.add("sequence > ?", Int64(clamping: query.afterSequence))
        if let before = query.beforeSequence { conditions.add("sequence < ?", Int64(clamping: before)) }
        if let principal = query.principalID { conditions.add("principalID = ?", principal) }
        if let action = query.action { conditions.add("action = ?", action) }
        if let from = query.fromUnixMs { conditions.add("at >= ?", from) }
        if let to = query.toUnixMs { conditions.add("at < ?", to) }
        if let outcomes = query.outcomes, !outcomes.isEmpty { conditions.among("outcome", outcomes) }
        guard query.limit > 0 else { return [] }
        guard query.resourceKind != nil || query.resourceID != nil else {
            return try self.auditRows(conditions, newestFirst: query.newestFirst, limit: query.limit)
        }
        // The index rows that can stand for the resource: as named, and its
        // record's (`indexed(kind:id:)`). They may stand for other resources
        // of the record too, so the entries found are kept only if they name
        // the resource itself: exactly the entries that name it.
        var alternatives: [(kind: String?, id: String?)] = [(query.resourceKind, query.resourceID)]
        if let id = query.resourceID {
            for kind in query.resourceKind.map({ [$0] }) ?? Self.partOwners.keys.sorted() {
                let owner = Self.indexed(kind: kind, id: id)
                if owner.kind != kind { alternatives.append((owner.kind, owner.id)) }
            }
        } else if let kind = query.resourceKind, let owner = Self.partOwners[kind] {
            alternatives.append((owner, nil))
        }
        var resource: [String] = []
        var arguments: [any SQLBindable] = []
        for (kind, id) in alternatives {
            var clause = SQLConditions()
            if let kind { clause.add("kind = ?", kind) }
            if let id { clause.add("id = ?", id) }
            resource.append("(" + clause.clauses.joined(separator: " AND ") + ")")
            arguments += clause.arguments
        }
        // And the entries that appended to a case's timeline, which its rows
        // name (`caseEvent.auditSequence`; ``appendAudit(_:)``), for the case
        // or any of its rows.
        var appended: [String] = []
        var everyCase = false
        for (kind, id) in alternatives where kind == nil || kind == RecordKind.caseRecord.rawValue {
            if let id { appended.append(id) } else { everyCase = true }
        }
        var candidates = "SELECT sequence FROM auditResource WHERE \(resource.joined(separator: " OR "))"
        if everyCase {
            candidates += " UNION ALL SELECT auditSequence FROM caseEvent WHERE auditSequence IS NOT NULL"
        } else if !appended.isEmpty {
            candidates += """
                 UNION ALL SELECT auditSequence FROM caseEvent
                WHERE caseID IN (\(Self.placeholders(appended.count))) AND auditSequence IS NOT NULL
                """
            arguments += appended.map { $0 as any SQLBindable }
        }
        conditions.add("sequence IN (\(candidates))", arguments: arguments)
        func names(_ entry: Haven_V1_AuditEntry) -> Bool {
            entry.resources.contains { resource in
                (query.resourceKind.map { resource.kind == $0 } ?? true)
                    && (query.resourceID.map { resource.id == $0 } ?? true)
            }
        }
        // Pages of candidates, in the query's order, until `limit` entries name the resource.
        let chunk = max(query.limit, 64)
        var found: [Haven_V1_AuditEntry] = []
        var cursor: Int64?
        while true {
            var bounded = conditions
            if let cursor { bounded.add(query.newestFirst ? "sequence < ?" : "sequence > ?", cursor) }
            let candidates = try self.auditRows(bounded, newestFirst: query.newestFirst, limit: chunk)
            for entry in candidates where names(entry) {
                found.append(entry)
                if found.count == query.limit { return found }
            }
            guard candidates.count == chunk, let last = candidates.last else { return found }
            cursor = Int64(clamping: last.sequence)
        }
    }

    /// The entries that meet `conditions`, decoded, in sequence order.
    private func auditRows(
        _ conditions: SQLConditions,
        newestFirst: Bool,
        limit: Int
    ) throws -> [Haven_V1_AuditEntry] {
        let order = newestFirst ? "DESC" : "ASC"
        return try self.sql.rows(
            "SELECT sequence, body, hash FROM audit \(conditions.sql) ORDER BY sequence \(order) LIMIT ?",
            conditions.arguments + [limit]
        ).map { row in
            let sequence = try row["sequence"] as Int64
            var entry: Haven_V1_AuditEntry
            do {
                entry = try Haven_V1_AuditEntry(serializedBytes: try row["body"] as Data)
            } catch {
                throw HavenError(code: .dataLoss, message: "audit entry \(sequence) cannot be decoded")
            }
            entry.entryHash = try row["hash"] as Data
            return entry
        }
    }

    func storedAuditEntries(from sequence: UInt64, limit: Int) throws -> [StoredAuditEntry] {
        try self.sql.rows(
            "SELECT sequence, body, hash FROM audit WHERE sequence >= ? ORDER BY sequence LIMIT ?",
            [Int64(clamping: sequence), limit]
        ).map { row in
            StoredAuditEntry(
                sequence: UInt64(clamping: try row["sequence"] as Int64),
                body: Array(try row["body"] as Data),
                hash: Array(try row["hash"] as Data)
            )
        }
    }

    func storedHashes() throws -> [String: [UInt8]] {
        var hashes: [String: [UInt8]] = [:]
        try self.sql.forEachRow(RecordRow.select, []) { selected in
            let row = try RecordRow(selected)
            hashes["\(row.kind)/\(row.id)"] = Self.storedHash(row)
        }
        try self.rowHashes(CaseEventRow.self, into: &hashes)
        try self.rowHashes(ServiceRow.self, into: &hashes)
        try self.rowHashes(AccusedStatusRow.self, into: &hashes)
        for account in try self.accounts() {
            hashes["account/\(account.id)"] = Self.accountHash(account)
        }
        for credential in try self.allCredentials() {
            hashes["credential/\(credential.serial)"] = Self.credentialHash(credential)
        }
        for enrollment in try self.allEnrollments() {
            hashes["enrollment/\(enrollment.id)"] = Self.enrollmentHash(enrollment)
        }
        return hashes
    }

    func changeHashes(from sequence: UInt64, limit: Int) throws -> [(UInt64, [UInt8])] {
        try self.sql.rows(
            """
            SELECT sequence, committedAt, officeCode, partnerID, survivorID, body FROM change
            WHERE sequence >= ? ORDER BY sequence LIMIT ?
            """,
            [Int64(clamping: sequence), limit]
        ).map { row in
            let sequence = try row["sequence"] as Int64
            return (
                UInt64(clamping: sequence),
                Self.changeHash(
                    sequence: sequence,
                    committedAt: try row["committedAt"],
                    officeCode: try row["officeCode"],
                    partnerID: try row["partnerID"],
                    survivorID: try row["survivorID"],
                    body: try row["body"]
                )
            )
        }
    }

    func saveCheckpoint(_ checkpoint: Haven_V1_AuditCheckpoint) throws {
        try self.sql.execute(
            "INSERT INTO checkpoint (size, body) VALUES (?, ?) ON CONFLICT(size) DO UPDATE SET body = excluded.body",
            [Int64(clamping: checkpoint.size), Data(try checkpoint.serializedBytes() as [UInt8])]
        )
    }

    func checkpoints(below size: UInt64?, limit: Int) throws -> [Haven_V1_AuditCheckpoint] {
        try self.sql.values(
            Data.self,
            "SELECT body FROM checkpoint WHERE size < ? ORDER BY size DESC LIMIT ?",
            [size.map { Int64(clamping: $0) } ?? Int64.max, limit]
        ).map { body in
            do {
                return try Haven_V1_AuditCheckpoint(serializedBytes: body)
            } catch {
                throw HavenError(code: .dataLoss, message: "a stored checkpoint cannot be decoded")
            }
        }
    }
}
