import HavenProtocol

/// Reads available inside a transaction.
package protocol StoreReader {
    /// Loads one record by id.
    func load<R: StoredRecord>(_ type: R.Type, id: String) throws -> R?

    /// Loads one record by its alias (a case reference, a survivor code).
    func load<R: StoredRecord>(_ type: R.Type, alias: String) throws -> R?

    /// Loads several records by id, in the order of `ids`, skipping missing ones.
    func load<R: StoredRecord>(_ type: R.Type, ids: [String]) throws -> [R]

    /// One page of records matching `query`.
    func page<R: StoredRecord>(_ type: R.Type, _ query: RecordQuery) throws -> RecordPage<R>

    /// Timeline events matching `query`, their notes opened. A case's own
    /// record holds `event_count`, never its events: a case read with its
    /// timeline is its record plus the events asked for here.
    func caseEvents(_ query: CaseEventQuery) throws -> [StoredCaseEvent]

    /// A survivor's services, their details opened. A survivor's own record
    /// holds `service_count`, never its services: a survivor read with its
    /// services is its record plus the services asked for here.
    func survivorServices(_ query: SurvivorServiceQuery) throws -> [Haven_V1_ServiceRecord]

    /// Accused persons' legal status changes, by accused id (an accused with
    /// none is absent). A case's record holds each accused's `legal_status`
    /// and `history_count`, never their history: a case read with histories
    /// is its record plus the changes asked for here.
    func accusedHistory(_ query: AccusedHistoryQuery) throws -> [String: [Haven_V1_AccusedStatusChange]]

    /// An office's report figures that come from its records' dated facts
    /// (``ReportFact``), by aggregate queries: no record is loaded.
    func officeFigures(_ query: OfficeFiguresQuery) throws -> OfficeFigures

    /// Counts records matching `query` (ignoring its cursor and limit).
    func count<R: StoredRecord>(_ type: R.Type, _ query: RecordQuery) throws -> Int

    /// A survivor's identity, opened; nil when it was erased (or never sealed).
    ///
    /// - Throws: ``HavenError`` DATA_LOSS when it is there but does not open
    ///   (moved, rolled back, or under a key this store does not hold).
    func identity(survivorID: String) throws -> Haven_V1_SurvivorIdentity?

    /// Change-log entries after `sequence`, oldest first.
    func changes(after sequence: UInt64, limit: Int) throws -> [ChangeEntry]

    /// The highest change-log sequence (0 when empty).
    func latestChangeSequence() throws -> UInt64

    /// The change log's lineage: random, and new for a restored database, so
    /// that a cursor of another lineage is recognised as such.
    func feedEpoch() throws -> String

    /// The result recorded for an idempotency key, if any.
    func idempotencyRecord(principalID: String, key: String) throws -> IdempotencyRecord?

    /// An account by id.
    func account(id: String) throws -> Account?

    /// Every account, by id.
    func accounts() throws -> [Account]

    /// One page of accounts by id: those after `after`, of `role` when given
    /// (a filter the caller asked for, not an access decision: the access
    /// policy has already decided who may list accounts).
    func accounts(after: String, role: Haven_V1_Role?, limit: Int) throws -> [Account]

    /// A number that grows with every change to any account (so a server can
    /// notice changes made by another process, such as `haven-admin`).
    func accountRevision() throws -> UInt64

    /// A certificate by serial (lowercase hex).
    func credential(serial: String) throws -> StoredCredential?

    /// An account's certificates, newest first.
    func credentials(accountID: String) throws -> [StoredCredential]

    /// The serials of revoked certificates that have not expired at `now`.
    func revokedSerials(notExpiredAt now: Int64) throws -> Set<String>

    /// An enrolment code by the SHA-256 of its normalized text.
    func enrollment(codeHash: [UInt8]) throws -> StoredEnrollment?

    /// An account's enrolment codes that still work at `now`.
    func usableEnrollments(accountID: String, at now: Int64) throws -> [StoredEnrollment]

    /// The audit trail's length (its last sequence).
    func auditSize() throws -> UInt64

    /// Audit entries matching `query`.
    func auditEntries(_ query: AuditQuery) throws -> [Haven_V1_AuditEntry]

    /// Audit entries as stored, from `sequence` on, for verification.
    func storedAuditEntries(from sequence: UInt64, limit: Int) throws -> [StoredAuditEntry]

    /// Every record's, timeline event's, account's, certificate's and
    /// enrolment code's stored hash, keyed `kind/id` (an event's id is
    /// `<case id>/<sequence>`).
    func storedHashes() throws -> [String: [UInt8]]

    /// The records whose stored report facts differ from what their records
    /// and rows state (`<kind>/<id>`, sorted, at most `limit`): facts are
    /// derived rows, outside the audit chain, so audit verification checks
    /// them against the audited rows they come from.
    func reportFactDifferences(limit: Int) throws -> [String]

    /// Change-log entries' stored hashes, from `sequence` on.
    func changeHashes(from sequence: UInt64, limit: Int) throws -> [(UInt64, [UInt8])]

    /// Signed checkpoints, newest first, below `size` (nil: from the newest).
    func checkpoints(below size: UInt64?, limit: Int) throws -> [Haven_V1_AuditCheckpoint]

    /// The fingerprint of the master key the database's office keys are
    /// wrapped with (nil before the first office key).
    func masterKeyFingerprint() throws -> String?

    /// Whether a record still has its own key (false once erased, or before
    /// anything of it was sealed).
    func hasRecordKey(kind: RecordKind, id: String) throws -> Bool
}

/// Writes available inside a write transaction.
package protocol StoreWriter: StoreReader {
    /// Inserts a new record, sealing its sealed fields (and `identity`, for a
    /// survivor) under a new key of its own. Throws ALREADY_EXISTS when its id
    /// or alias is taken. A case's `events` are stored as its first timeline
    /// events (see ``update(_:expectedVersion:sealed:)``).
    func insert<R: StoredRecord>(_ record: R, identity: Haven_V1_SurvivorIdentity?) throws

    /// Replaces a record whose stored version is `expectedVersion`; the record
    /// passed carries the new version. A case carries in `events` only the
    /// events this change appends: they are stored as rows of their own after
    /// those stored (numbered on, `event_count` the last), and its record is
    /// stored without them. Everything sealed is sealed again for
    /// the new version (a rolled-back box does not open). Throws
    /// FAILED_PRECONDITION with the current version when the stored one
    /// differs, NOT_FOUND when absent.
    func update<R: StoredRecord>(_ record: R, expectedVersion: UInt64, sealed: SealedChange) throws

    /// Appends to the change log and returns the entry's sequence.
    @discardableResult
    func appendChange(_ entry: NewChange) throws -> UInt64

    /// Increments a named counter and returns its new value (1 the first time).
    func nextCounterValue(_ name: String) throws -> UInt64

    /// Records the result of an idempotent create.
    func recordIdempotency(_ record: IdempotencyRecord) throws

    /// Inserts or replaces an account, and advances ``StoreReader/accountRevision()``.
    func saveAccount(_ account: Account) throws

    /// Inserts or replaces a certificate, and advances ``StoreReader/accountRevision()``.
    func saveCredential(_ credential: StoredCredential) throws

    /// Inserts or replaces an enrolment code, and advances ``StoreReader/accountRevision()``.
    func saveEnrollment(_ enrollment: StoredEnrollment) throws

    /// Appends the audit entry covering everything this transaction wrote
    /// so far (records, accounts and changes, with their stored hashes) plus
    /// `entry`'s own resources. A transaction that writes and does not end
    /// with this is refused at commit.
    @discardableResult
    func appendAudit(_ entry: NewAuditEntry) throws -> Haven_V1_AuditEntry

    /// Whether something written awaits its audit entry.
    var pendingAudit: Bool { get }

    /// Stores a signed checkpoint.
    func saveCheckpoint(_ checkpoint: Haven_V1_AuditCheckpoint) throws

    /// Rotates keys: every office key is re-wrapped under `master` (when
    /// given, which becomes the database's master key), and each office of
    /// `offices` gets a new key that re-wraps its records' keys.
    func rotateKeys(master: MasterKeyMaterial?, offices: [String]) throws -> KeyRotation
}

extension StoreWriter {
    /// Inserts a record with no identity.
    package func insert<R: StoredRecord>(_ record: R) throws {
        try self.insert(record, identity: nil)
    }

    /// Replaces a record, keeping what is sealed beside it.
    package func update<R: StoredRecord>(_ record: R, expectedVersion: UInt64) throws {
        try self.update(record, expectedVersion: expectedVersion, sealed: .keep)
    }

    /// Saves an account and audits it, in one step: for set-up code and the
    /// admin tool's offline commands.
    package func saveAccount(_ account: Account, auditedAs principalID: String, action: String, at: Int64) throws {
        try self.saveAccount(account)
        try self.appendAudit(NewAuditEntry(atUnixMs: at, principalID: principalID, action: action))
    }
}
