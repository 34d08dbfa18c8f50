import Foundation

/// Certificates and enrolment codes: written like accounts (each advances the
/// account revision, so open sessions are re-checked, and each is covered by
/// the audit entry of its transaction).
extension SQLTransaction {
    func feedEpoch() throws -> String {
        try self.sql.value(String.self, "SELECT value FROM meta WHERE name = 'feed-epoch'") ?? ""
    }

    /// Gives the change log a new lineage (after a restore): 8 random bytes, in hex.
    func beginNewFeedEpoch() throws {
        var generator = SystemRandomNumberGenerator()
        let epoch = (0..<8).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        try self.sql.execute("UPDATE meta SET value = ? WHERE name = 'feed-epoch'", [epoch])
    }

    func credential(serial: String) throws -> StoredCredential? {
        try self.sql.row("\(Self.credentialColumns) WHERE serial = ?", [serial]).map(Self.credential)
    }

    func credentials(accountID: String) throws -> [StoredCredential] {
        try self.sql.rows("\(Self.credentialColumns) WHERE accountID = ? ORDER BY issuedAt DESC, serial", [accountID])
            .map(Self.credential)
    }

    func revokedSerials(notExpiredAt now: Int64) throws -> Set<String> {
        Set(
            try self.sql.values(
                String.self,
                "SELECT serial FROM credential WHERE revokedAt != 0 AND notValidAfter > ?",
                [now]
            )
        )
    }

    func allCredentials() throws -> [StoredCredential] {
        try self.sql.rows("\(Self.credentialColumns) ORDER BY serial").map(Self.credential)
    }

    private static let credentialColumns = """
        SELECT serial, accountID, publicKeySHA256, issuedAt, notValidAfter, issuedBy, revokedAt, revokedBy,
            revokedReason FROM credential
        """

    static func credential(_ row: SQLRow) throws -> StoredCredential {
        var credential = StoredCredential(
            serial: try row["serial"],
            accountID: try row["accountID"],
            publicKeySHA256: try row["publicKeySHA256"],
            issuedAtUnixMs: try row["issuedAt"],
            notValidAfterUnixMs: try row["notValidAfter"],
            issuedBy: try row["issuedBy"]
        )
        credential.revokedAtUnixMs = try row["revokedAt"]
        credential.revokedBy = try row["revokedBy"]
        credential.revokedReason = try row["revokedReason"]
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
        try self.sql.execute(
            """
            INSERT INTO credential (serial, accountID, publicKeySHA256, issuedAt, notValidAfter, issuedBy,
                revokedAt, revokedBy, revokedReason)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(serial) DO UPDATE SET revokedAt = excluded.revokedAt, revokedBy = excluded.revokedBy,
                revokedReason = excluded.revokedReason
            """,
            [
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
        try self.sql.row("\(Self.enrollmentColumns) WHERE codeHash = ?", [Data(codeHash)]).map(Self.enrollment)
    }

    func usableEnrollments(accountID: String, at now: Int64) throws -> [StoredEnrollment] {
        try self.sql.rows(
            "\(Self.enrollmentColumns) WHERE accountID = ? AND spentAt = 0 AND expiresAt > ? ORDER BY id",
            [accountID, now]
        ).map(Self.enrollment)
    }

    func allEnrollments() throws -> [StoredEnrollment] {
        try self.sql.rows("\(Self.enrollmentColumns) ORDER BY id").map(Self.enrollment)
    }

    private static let enrollmentColumns =
        "SELECT id, codeHash, accountID, createdAt, expiresAt, certificateValidDays, spentAt FROM enrollment"

    static func enrollment(_ row: SQLRow) throws -> StoredEnrollment {
        let hash: Data = try row["codeHash"]
        var enrollment = StoredEnrollment(
            id: try row["id"],
            codeHash: Array(hash),
            accountID: try row["accountID"],
            createdAtUnixMs: try row["createdAt"],
            expiresAtUnixMs: try row["expiresAt"],
            certificateValidDays: try row["certificateValidDays"]
        )
        enrollment.spentAtUnixMs = try row["spentAt"]
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
        try self.sql.execute(
            """
            INSERT INTO enrollment (id, codeHash, accountID, createdAt, expiresAt, certificateValidDays, spentAt)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(id) DO UPDATE SET spentAt = excluded.spentAt
            """,
            [
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
