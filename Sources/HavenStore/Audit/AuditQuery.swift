import HavenProtocol

/// A filtered, paged read of the audit trail.
package struct AuditQuery: Sendable, Hashable {
    package var principalID: String?
    package var action: String?
    package var resourceKind: String?
    package var resourceID: String?
    package var fromUnixMs: Int64?
    package var toUnixMs: Int64?
    package var outcomes: [Int]?
    /// Only entries above this sequence.
    package var afterSequence: UInt64 = 0
    /// Only entries below this sequence (the cursor of a newest-first page).
    package var beforeSequence: UInt64?
    package var newestFirst = false
    package var limit: Int

    package init(limit: Int) {
        self.limit = limit
    }
}

/// One stored audit entry as the verifier reads it: the bytes and the hash
/// as they are in the database, before anything is trusted.
package struct StoredAuditEntry: Sendable {
    package var sequence: UInt64
    package var body: [UInt8]
    package var hash: [UInt8]

    package init(sequence: UInt64, body: [UInt8], hash: [UInt8]) {
        self.sequence = sequence
        self.body = body
        self.hash = hash
    }
}

/// How a write changes what is sealed beside a record.
package enum SealedChange: Sendable {
    /// Keep the sealed identity (re-sealed for the new version).
    case keep
    /// Seal this identity (a survivor's).
    case identity(Haven_V1_SurvivorIdentity)
    /// Destroy the record's key: its identity and sealed fields, in this
    /// version and every earlier one (change log and backups included), can
    /// no longer be opened.
    case erase
}

/// What a key rotation did.
package struct KeyRotation: Sendable {
    package var officesRotated: Int
    package var recordKeysRewrapped: Int

    package init(officesRotated: Int, recordKeysRewrapped: Int) {
        self.officesRotated = officesRotated
        self.recordKeysRewrapped = recordKeysRewrapped
    }
}
