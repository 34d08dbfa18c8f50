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

    /// Counts records matching `query` (ignoring its cursor and limit).
    func count<R: StoredRecord>(_ type: R.Type, _ query: RecordQuery) throws -> Int

    /// The sealed secret stored beside a record (a survivor's identity).
    func secret<R: StoredRecord>(of type: R.Type, id: String) throws -> [UInt8]?

    /// Change-log entries after `sequence`, oldest first.
    func changes(after sequence: UInt64, limit: Int) throws -> [ChangeEntry]

    /// The highest change-log sequence (0 when empty).
    func latestChangeSequence() throws -> UInt64

    /// The result recorded for an idempotency key, if any.
    func idempotencyRecord(principalID: String, key: String) throws -> IdempotencyRecord?

    /// An account by id.
    func account(id: String) throws -> Account?

    /// Every account, by id.
    func accounts() throws -> [Account]

    /// A number that grows with every change to any account (so a server can
    /// notice changes made by another process, such as `haven-admin`).
    func accountRevision() throws -> UInt64

    /// An office's wrapped data key.
    func wrappedOfficeKey(officeCode: String) throws -> [UInt8]?
}

/// Writes available inside a write transaction.
package protocol StoreWriter: StoreReader {
    /// Inserts a new record. Throws ALREADY_EXISTS when its id or alias is taken.
    func insert<R: StoredRecord>(_ record: R, secret: [UInt8]?) throws

    /// Replaces a record whose stored version is `expectedVersion`; the record
    /// passed carries the new version. Throws FAILED_PRECONDITION with the
    /// current version when the stored one differs, NOT_FOUND when absent.
    func update<R: StoredRecord>(_ record: R, expectedVersion: UInt64, secret: [UInt8]??) throws

    /// Appends to the change log and returns the entry's sequence.
    @discardableResult
    func appendChange(_ entry: NewChange) throws -> UInt64

    /// Increments a named counter and returns its new value (1 the first time).
    func nextCounterValue(_ name: String) throws -> UInt64

    /// Records the result of an idempotent create.
    func recordIdempotency(_ record: IdempotencyRecord) throws

    /// Inserts or replaces an account, and advances ``StoreReader/accountRevision()``.
    func saveAccount(_ account: Account) throws

    /// Stores an office's wrapped data key (once; never replaced).
    func saveWrappedOfficeKey(officeCode: String, wrappedKey: [UInt8]) throws
}

extension StoreWriter {
    /// Inserts a record with no secret.
    package func insert<R: StoredRecord>(_ record: R) throws {
        try self.insert(record, secret: nil)
    }

    /// Replaces a record, keeping its secret.
    package func update<R: StoredRecord>(_ record: R, expectedVersion: UInt64) throws {
        try self.update(record, expectedVersion: expectedVersion, secret: .none)
    }
}
