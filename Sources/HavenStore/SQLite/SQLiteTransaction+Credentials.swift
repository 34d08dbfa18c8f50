import Foundation
import GRDB

/// Certificates and enrolment codes: written like accounts (each advances the
/// account revision, so open sessions are re-checked, and each is covered by
/// the audit entry of its transaction).
extension SQLiteTransaction {
    func feedEpoch() throws -> String {
        try String.fetchOne(try self.db.cachedStatement(sql: "SELECT value FROM meta WHERE name = 'feed-epoch'")) ?? ""
    }

    func credential(serial: String) throws -> StoredCredential? {
        try Row.fetchOne(
            try self.db.cachedStatement(sql: "SELECT * FROM credential WHERE serial = ?"),
            arguments: [serial]
        )
        .map(Self.credential)
    }

    func credentials(accountID: String) throws -> [StoredCredential] {
        try Row.fetchAll(
            try self.db.cachedStatement(
                sql: "SELECT * FROM credential WHERE accountID = ? ORDER BY issuedAt DESC, serial"
            ),
            arguments: [accountID]
        ).map(Self.credential)
    }

    func revokedSerials(notExpiredAt now: Int64) throws -> Set<String> {
        Set(
            try String.fetchAll(
                try self.db.cachedStatement(
                    sql: "SELECT serial FROM credential WHERE revokedAt != 0 AND notValidAfter > ?"
                ),
                arguments: [now]
            )
        )
    }

    func allCredentials() throws -> [StoredCredential] {
        try Row.fetchAll(try self.db.cachedStatement(sql: "SELECT * FROM credential ORDER BY serial")).map(
            Self.credential
        )
    }

    static func credential(_ row: Row) -> StoredCredential {
        var credential = StoredCredential(
            serial: row["serial"],
            accountID: row["accountID"],
            publicKeySHA256: row["publicKeySHA256"],
            issuedAtUnixMs: row["issuedAt"],
            notValidAfterUnixMs: row["notValidAfter"],
            issuedBy: row["issuedBy"]
        )
        credential.revokedAtUnixMs = row["revokedAt"]
        credential.revokedBy = row["revokedBy"]
        credential.revokedReason = row["revokedReason"]
        return credential
    }

    func saveCredential(_ credential: StoredCredential) throws {
        _ = try self.nextCounterValue(Self.accountRevisionCounter)
        self.journal.wrote(
            kind: "credential",
            id: credential.serial,
            office: nil,
            version: 0,
            hash: Self.credentialHash(credential)
        )
        try self.db.cachedStatement(
            sql: """
                INSERT INTO credential (serial, accountID, publicKeySHA256, issuedAt, notValidAfter, issuedBy,
                    revokedAt, revokedBy, revokedReason)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(serial) DO UPDATE SET revokedAt = excluded.revokedAt, revokedBy = excluded.revokedBy,
                    revokedReason = excluded.revokedReason
                """
        ).execute(arguments: [
            credential.serial, credential.accountID, credential.publicKeySHA256, credential.issuedAtUnixMs,
            credential.notValidAfterUnixMs, credential.issuedBy, credential.revokedAtUnixMs,
            credential.revokedBy, credential.revokedReason,
        ]
        )
    }

    /// What the audit trail commits to for a certificate.
    static func credentialHash(_ credential: StoredCredential) -> [UInt8] {
        var hasher = StoredHasher("haven.v1 credential")
        hasher.add(credential.serial)
        hasher.add(credential.accountID)
        hasher.add(credential.publicKeySHA256)
        hasher.add(credential.issuedAtUnixMs)
        hasher.add(credential.notValidAfterUnixMs)
        hasher.add(credential.issuedBy)
        hasher.add(credential.revokedAtUnixMs)
        hasher.add(credential.revokedBy)
        hasher.add(credential.revokedReason)
        return hasher.finalize()
    }

    func enrollment(codeHash: [UInt8]) throws -> StoredEnrollment? {
        try Row.fetchOne(
            try self.db.cachedStatement(sql: "SELECT * FROM enrollment WHERE codeHash = ?"),
            arguments: [Data(codeHash)]
        )
        .map(Self.enrollment)
    }

    func usableEnrollments(accountID: String, at now: Int64) throws -> [StoredEnrollment] {
        try Row.fetchAll(
            try self.db.cachedStatement(
                sql: "SELECT * FROM enrollment WHERE accountID = ? AND spentAt = 0 AND expiresAt > ? ORDER BY id"
            ),
            arguments: [accountID, now]
        ).map(Self.enrollment)
    }

    func allEnrollments() throws -> [StoredEnrollment] {
        try Row.fetchAll(try self.db.cachedStatement(sql: "SELECT * FROM enrollment ORDER BY id")).map(Self.enrollment)
    }

    static func enrollment(_ row: Row) -> StoredEnrollment {
        let hash: Data = row["codeHash"]
        var enrollment = StoredEnrollment(
            id: row["id"],
            codeHash: Array(hash),
            accountID: row["accountID"],
            createdAtUnixMs: row["createdAt"],
            expiresAtUnixMs: row["expiresAt"],
            certificateValidDays: row["certificateValidDays"]
        )
        enrollment.spentAtUnixMs = row["spentAt"]
        return enrollment
    }

    func saveEnrollment(_ enrollment: StoredEnrollment) throws {
        _ = try self.nextCounterValue(Self.accountRevisionCounter)
        self.journal.wrote(
            kind: "enrollment",
            id: enrollment.id,
            office: nil,
            version: 0,
            hash: Self.enrollmentHash(enrollment)
        )
        try self.db.cachedStatement(
            sql: """
                INSERT INTO enrollment (id, codeHash, accountID, createdAt, expiresAt, certificateValidDays, spentAt)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET spentAt = excluded.spentAt
                """
        ).execute(arguments: [
            enrollment.id, Data(enrollment.codeHash), enrollment.accountID, enrollment.createdAtUnixMs,
            enrollment.expiresAtUnixMs, enrollment.certificateValidDays, enrollment.spentAtUnixMs,
        ]
        )
    }

    /// What the audit trail commits to for an enrolment code.
    static func enrollmentHash(_ enrollment: StoredEnrollment) -> [UInt8] {
        var hasher = StoredHasher("haven.v1 enrollment")
        hasher.add(enrollment.id)
        hasher.add(enrollment.codeHash)
        hasher.add(enrollment.accountID)
        hasher.add(enrollment.createdAtUnixMs)
        hasher.add(enrollment.expiresAtUnixMs)
        hasher.add(Int64(enrollment.certificateValidDays))
        hasher.add(enrollment.spentAtUnixMs)
        return hasher.finalize()
    }
}
