import Foundation
import GRDB
import HavenProtocol
import SwiftProtobuf

/// The audit trail, as SQLite keeps it: `audit` (sequence, the entry's
/// canonical bytes and its chain hash, plus columns to search by) and
/// `auditResource` (which entries name which resource).
extension SQLiteTransaction {
    @discardableResult
    func appendAudit(_ new: NewAuditEntry) throws -> Haven_V1_AuditEntry {
        let (written, changes) = self.journal.take()
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
        let last = try Row.fetchOne(
            try self.db.cachedStatement(sql: "SELECT sequence, hash FROM audit ORDER BY sequence DESC LIMIT 1")
        )
        entry.sequence = UInt64(last.map { $0["sequence"] as Int64 } ?? 0) + 1
        entry.previousHash = last.map { $0["hash"] as Data } ?? Data(AuditChain.zeroHash)
        let canonical: [UInt8]
        do {
            canonical = try AuditChain.canonicalBytes(entry)
        } catch {
            throw HavenError(code: .internal, message: "could not serialize an audit entry")
        }
        let hash = AuditChain.entryHash(canonical: canonical)
        try self.db.cachedStatement(
            sql:
                "INSERT INTO audit (sequence, at, principalID, action, outcome, body, hash) VALUES (?, ?, ?, ?, ?, ?, ?)"
        ).execute(
            arguments: [
                Int64(entry.sequence), entry.atUnixMs, entry.principalID, entry.action, entry.outcome.rawValue,
                Data(canonical), Data(hash),
            ]
        )
        var named = Set<String>()
        for resource in entry.resources where named.insert("\(resource.kind)/\(resource.id)").inserted {
            try self.db.cachedStatement(sql: "INSERT INTO auditResource (kind, id, sequence) VALUES (?, ?, ?)")
                .execute(arguments: [resource.kind, resource.id, Int64(entry.sequence)])
        }
        entry.entryHash = Data(hash)
        return entry
    }

    var pendingAudit: Bool { self.journal.unaudited }

    func auditSize() throws -> UInt64 {
        UInt64(
            try Int64.fetchOne(try self.db.cachedStatement(sql: "SELECT COALESCE(MAX(sequence), 0) FROM audit")) ?? 0
        )
    }

    func auditEntries(_ query: AuditQuery) throws -> [Haven_V1_AuditEntry] {
        var conditions = ["sequence > ?"]
        var arguments: StatementArguments = [Int64(clamping: query.afterSequence)]
        if let before = query.beforeSequence {
            conditions.append("sequence < ?")
            arguments += [Int64(clamping: before)]
        }
        if let principal = query.principalID {
            conditions.append("principalID = ?")
            arguments += [principal]
        }
        if let action = query.action {
            conditions.append("action = ?")
            arguments += [action]
        }
        if let from = query.fromUnixMs {
            conditions.append("at >= ?")
            arguments += [from]
        }
        if let to = query.toUnixMs {
            conditions.append("at < ?")
            arguments += [to]
        }
        if let outcomes = query.outcomes, !outcomes.isEmpty {
            conditions.append("outcome IN (\(outcomes.map { _ in "?" }.joined(separator: ",")))")
            for outcome in outcomes { arguments += [outcome] }
        }
        if query.resourceKind != nil || query.resourceID != nil {
            var inner: [String] = []
            if let kind = query.resourceKind {
                inner.append("kind = ?")
                arguments += [kind]
            }
            if let id = query.resourceID {
                inner.append("id = ?")
                arguments += [id]
            }
            conditions.append(
                "sequence IN (SELECT sequence FROM auditResource WHERE \(inner.joined(separator: " AND ")))"
            )
        }
        arguments += [query.limit]
        let order = query.newestFirst ? "DESC" : "ASC"
        return try Row.fetchAll(
            self.db,
            sql: """
                SELECT sequence, body, hash FROM audit WHERE \(conditions.joined(separator: " AND "))
                ORDER BY sequence \(order) LIMIT ?
                """,
            arguments: arguments
        ).map { row in
            let sequence = row["sequence"] as Int64
            var entry: Haven_V1_AuditEntry
            do {
                entry = try Haven_V1_AuditEntry(serializedBytes: row["body"] as Data)
            } catch {
                throw HavenError(code: .dataLoss, message: "audit entry \(sequence) cannot be decoded")
            }
            entry.entryHash = row["hash"] as Data
            return entry
        }
    }

    func storedAuditEntries(from sequence: UInt64, limit: Int) throws -> [StoredAuditEntry] {
        try Row.fetchAll(
            try self.db.cachedStatement(
                sql: "SELECT sequence, body, hash FROM audit WHERE sequence >= ? ORDER BY sequence LIMIT ?"
            ),
            arguments: [Int64(clamping: sequence), limit]
        ).map { row in
            StoredAuditEntry(
                sequence: UInt64(clamping: row["sequence"] as Int64),
                body: Array(row["body"] as Data),
                hash: Array(row["hash"] as Data)
            )
        }
    }

    func storedHashes() throws -> [String: [UInt8]] {
        var hashes: [String: [UInt8]] = [:]
        let rows = try RecordRow.fetchCursor(self.db)
        while let row = try rows.next() {
            hashes["\(row.kind)/\(row.id)"] = Self.storedHash(row)
        }
        try self.caseEventHashes(into: &hashes)
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
        try Row.fetchAll(
            try self.db.cachedStatement(
                sql: """
                    SELECT sequence, committedAt, officeCode, partnerID, survivorID, body FROM change
                    WHERE sequence >= ? ORDER BY sequence LIMIT ?
                    """
            ),
            arguments: [Int64(clamping: sequence), limit]
        ).map { row in
            let sequence = row["sequence"] as Int64
            return (
                UInt64(clamping: sequence),
                Self.changeHash(
                    sequence: sequence,
                    committedAt: row["committedAt"],
                    officeCode: row["officeCode"],
                    partnerID: row["partnerID"],
                    survivorID: row["survivorID"],
                    body: row["body"]
                )
            )
        }
    }

    func saveCheckpoint(_ checkpoint: Haven_V1_AuditCheckpoint) throws {
        try self.db.cachedStatement(
            sql: "INSERT OR REPLACE INTO checkpoint (size, body) VALUES (?, ?)"
        ).execute(arguments: [Int64(clamping: checkpoint.size), Data(try checkpoint.serializedBytes() as [UInt8])]
        )
    }

    func checkpoints(below size: UInt64?, limit: Int) throws -> [Haven_V1_AuditCheckpoint] {
        try Data.fetchAll(
            try self.db.cachedStatement(sql: "SELECT body FROM checkpoint WHERE size < ? ORDER BY size DESC LIMIT ?"),
            arguments: [size.map { Int64(clamping: $0) } ?? Int64.max, limit]
        ).map { body in
            do {
                return try Haven_V1_AuditCheckpoint(serializedBytes: body)
            } catch {
                throw HavenError(code: .dataLoss, message: "a stored checkpoint cannot be decoded")
            }
        }
    }
}
