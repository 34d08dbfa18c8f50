import HavenProtocol

/// Counters with a meaning outside the store.
package enum StoreCounters {
    /// Grows with every change to an account, certificate or enrolment code
    /// (``StoreReader/accountRevision()``); a write that changes who may stay
    /// connected in another way (a partner organisation deactivated) advances
    /// it too, so that servers re-check their open sessions.
    package static let accountRevision = "account-revision"
}

/// A certificate the deployment issued for an account: the account is bound
/// to its certificates by serial and public key, never by common name.
package struct StoredCredential: Sendable, Hashable {
    /// The serial number, lowercase hex.
    package var serial: String
    package var accountID: String
    /// SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex.
    package var publicKeySHA256: String
    package var issuedAtUnixMs: Int64
    package var notValidAfterUnixMs: Int64
    /// `enrolment`, `renewal`, `init` or `legacy`.
    package var issuedBy: String
    /// 0 while not revoked.
    package var revokedAtUnixMs: Int64 = 0
    package var revokedBy: String = ""
    package var revokedReason: String = ""

    package init(
        serial: String,
        accountID: String,
        publicKeySHA256: String,
        issuedAtUnixMs: Int64,
        notValidAfterUnixMs: Int64,
        issuedBy: String
    ) {
        self.serial = serial
        self.accountID = accountID
        self.publicKeySHA256 = publicKeySHA256
        self.issuedAtUnixMs = issuedAtUnixMs
        self.notValidAfterUnixMs = notValidAfterUnixMs
        self.issuedBy = issuedBy
    }

    package var isRevoked: Bool { self.revokedAtUnixMs != 0 }
}

/// A one-time enrolment code, kept as its SHA-256 only.
package struct StoredEnrollment: Sendable, Hashable {
    /// An opaque id (`enr_…`), what the audit trail names.
    package var id: String
    /// SHA-256 of the normalized code.
    package var codeHash: [UInt8]
    package var accountID: String
    package var createdAtUnixMs: Int64
    package var expiresAtUnixMs: Int64
    /// How long the certificate it yields is valid.
    package var certificateValidDays: Int
    /// When it was used or withdrawn (0 while it still works).
    package var spentAtUnixMs: Int64 = 0

    package init(
        id: String,
        codeHash: [UInt8],
        accountID: String,
        createdAtUnixMs: Int64,
        expiresAtUnixMs: Int64,
        certificateValidDays: Int
    ) {
        self.id = id
        self.codeHash = codeHash
        self.accountID = accountID
        self.createdAtUnixMs = createdAtUnixMs
        self.expiresAtUnixMs = expiresAtUnixMs
        self.certificateValidDays = certificateValidDays
    }

    /// Whether it may still be used at `now`.
    package func isUsable(at now: Int64) -> Bool { self.spentAtUnixMs == 0 && now < self.expiresAtUnixMs }
}
