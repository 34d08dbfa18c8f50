import HavenProtocol
import HavenStore
import Synchronization

/// A store that records which reads each transaction makes (the kind of
/// operation and the record kind, never ids), to show that two requests did
/// the same work.
package final class RecordingStore: RecordStore {
    package let base: any RecordStore
    private let log = Mutex<[String]>([])

    package init(_ base: any RecordStore) {
        self.base = base
    }

    /// The operations recorded since the last call, and a fresh start.
    package func take() -> [String] {
        self.log.withLock { log in
            defer { log = [] }
            return log
        }
    }

    func record(_ operation: String) { self.log.withLock { $0.append(operation) } }

    package func read<T: Sendable>(_ body: @escaping @Sendable (any StoreReader) throws -> T) async throws -> T {
        try await self.base.read { tx in try body(RecordingReader(base: tx, store: self)) }
    }

    package func write<T: Sendable>(_ body: @escaping @Sendable (any StoreWriter) throws -> T) async throws -> T {
        try await self.base.write { tx in try body(RecordingWriter(base: tx, store: self)) }
    }

    package func latestChangeSequence() async throws -> UInt64 { try await self.base.latestChangeSequence() }

    package func changeNotifications() -> AsyncStream<UInt64> { self.base.changeNotifications() }
}

struct RecordingReader: StoreReader {
    let base: any StoreReader
    let store: RecordingStore

    func load<R: StoredRecord>(_ type: R.Type, id: String) throws -> R? {
        self.store.record("load \(R.recordKind.rawValue) by id")
        return try self.base.load(type, id: id)
    }
    func load<R: StoredRecord>(_ type: R.Type, alias: String) throws -> R? {
        self.store.record("load \(R.recordKind.rawValue) by alias")
        return try self.base.load(type, alias: alias)
    }
    func load<R: StoredRecord>(_ type: R.Type, ids: [String]) throws -> [R] {
        self.store.record("load \(R.recordKind.rawValue) by ids")
        return try self.base.load(type, ids: ids)
    }
    func page<R: StoredRecord>(_ type: R.Type, _ query: RecordQuery) throws -> RecordPage<R> {
        self.store.record("page \(R.recordKind.rawValue)")
        return try self.base.page(type, query)
    }
    func count<R: StoredRecord>(_ type: R.Type, _ query: RecordQuery) throws -> Int {
        self.store.record("count \(R.recordKind.rawValue)")
        return try self.base.count(type, query)
    }
    func caseEvents(_ query: CaseEventQuery) throws -> [StoredCaseEvent] {
        self.store.record("case events")
        return try self.base.caseEvents(query)
    }
    func survivorServices(_ query: SurvivorServiceQuery) throws -> [Haven_V1_ServiceRecord] {
        self.store.record("survivor services")
        return try self.base.survivorServices(query)
    }
    func accusedHistory(_ query: AccusedHistoryQuery) throws -> [String: [Haven_V1_AccusedStatusChange]] {
        self.store.record("accused history")
        return try self.base.accusedHistory(query)
    }
    func officeFigures(_ query: OfficeFiguresQuery) throws -> OfficeFigures {
        self.store.record("office figures")
        return try self.base.officeFigures(query)
    }
    func identity(survivorID: String) throws -> Haven_V1_SurvivorIdentity? {
        self.store.record("identity")
        return try self.base.identity(survivorID: survivorID)
    }
    func changes(after sequence: UInt64, limit: Int) throws -> [ChangeEntry] {
        self.store.record("changes")
        return try self.base.changes(after: sequence, limit: limit)
    }
    func latestChangeSequence() throws -> UInt64 { try self.base.latestChangeSequence() }
    func feedEpoch() throws -> String { try self.base.feedEpoch() }
    func idempotencyRecord(principalID: String, key: String) throws -> IdempotencyRecord? {
        self.store.record("idempotency")
        return try self.base.idempotencyRecord(principalID: principalID, key: key)
    }
    func account(id: String) throws -> Account? {
        self.store.record("account")
        return try self.base.account(id: id)
    }
    func accounts() throws -> [Account] { try self.base.accounts() }
    func accounts(after: String, role: Haven_V1_Role?, limit: Int) throws -> [Account] {
        try self.base.accounts(after: after, role: role, limit: limit)
    }
    func accountRevision() throws -> UInt64 { try self.base.accountRevision() }
    func credential(serial: String) throws -> StoredCredential? { try self.base.credential(serial: serial) }
    func credentials(accountID: String) throws -> [StoredCredential] { try self.base.credentials(accountID: accountID) }
    func revokedSerials(notExpiredAt now: Int64) throws -> Set<String> {
        try self.base.revokedSerials(notExpiredAt: now)
    }
    func enrollment(codeHash: [UInt8]) throws -> StoredEnrollment? { try self.base.enrollment(codeHash: codeHash) }
    func usableEnrollments(accountID: String, at now: Int64) throws -> [StoredEnrollment] {
        try self.base.usableEnrollments(accountID: accountID, at: now)
    }
    func auditSize() throws -> UInt64 { try self.base.auditSize() }
    func auditEntries(_ query: AuditQuery) throws -> [Haven_V1_AuditEntry] { try self.base.auditEntries(query) }
    func storedAuditEntries(from sequence: UInt64, limit: Int) throws -> [StoredAuditEntry] {
        try self.base.storedAuditEntries(from: sequence, limit: limit)
    }
    func storedHashes() throws -> [String: [UInt8]] { try self.base.storedHashes() }
    func reportFactDifferences(limit: Int) throws -> [String] { try self.base.reportFactDifferences(limit: limit) }
    func changeHashes(from sequence: UInt64, limit: Int) throws -> [(UInt64, [UInt8])] {
        try self.base.changeHashes(from: sequence, limit: limit)
    }
    func checkpoints(below size: UInt64?, limit: Int) throws -> [Haven_V1_AuditCheckpoint] {
        try self.base.checkpoints(below: size, limit: limit)
    }
    func masterKeyFingerprint() throws -> String? { try self.base.masterKeyFingerprint() }
    func hasRecordKey(kind: RecordKind, id: String) throws -> Bool { try self.base.hasRecordKey(kind: kind, id: id) }
}

struct RecordingWriter: StoreWriter {
    let base: any StoreWriter
    let store: RecordingStore
    private var reader: RecordingReader { RecordingReader(base: self.base, store: self.store) }

    init(base: any StoreWriter, store: RecordingStore) {
        self.base = base
        self.store = store
    }

    func load<R: StoredRecord>(_ type: R.Type, id: String) throws -> R? { try self.reader.load(type, id: id) }
    func load<R: StoredRecord>(_ type: R.Type, alias: String) throws -> R? { try self.reader.load(type, alias: alias) }
    func load<R: StoredRecord>(_ type: R.Type, ids: [String]) throws -> [R] { try self.reader.load(type, ids: ids) }
    func page<R: StoredRecord>(_ type: R.Type, _ query: RecordQuery) throws -> RecordPage<R> {
        try self.reader.page(type, query)
    }
    func count<R: StoredRecord>(_ type: R.Type, _ query: RecordQuery) throws -> Int {
        try self.reader.count(type, query)
    }
    func caseEvents(_ query: CaseEventQuery) throws -> [StoredCaseEvent] {
        try self.reader.caseEvents(query)
    }
    func survivorServices(_ query: SurvivorServiceQuery) throws -> [Haven_V1_ServiceRecord] {
        try self.reader.survivorServices(query)
    }
    func accusedHistory(_ query: AccusedHistoryQuery) throws -> [String: [Haven_V1_AccusedStatusChange]] {
        try self.reader.accusedHistory(query)
    }
    func officeFigures(_ query: OfficeFiguresQuery) throws -> OfficeFigures {
        try self.reader.officeFigures(query)
    }
    func identity(survivorID: String) throws -> Haven_V1_SurvivorIdentity? {
        try self.reader.identity(survivorID: survivorID)
    }
    func changes(after sequence: UInt64, limit: Int) throws -> [ChangeEntry] {
        try self.reader.changes(after: sequence, limit: limit)
    }
    func latestChangeSequence() throws -> UInt64 { try self.base.latestChangeSequence() }
    func feedEpoch() throws -> String { try self.base.feedEpoch() }
    func idempotencyRecord(principalID: String, key: String) throws -> IdempotencyRecord? {
        try self.reader.idempotencyRecord(principalID: principalID, key: key)
    }
    func account(id: String) throws -> Account? { try self.reader.account(id: id) }
    func accounts() throws -> [Account] { try self.base.accounts() }
    func accounts(after: String, role: Haven_V1_Role?, limit: Int) throws -> [Account] {
        try self.base.accounts(after: after, role: role, limit: limit)
    }
    func accountRevision() throws -> UInt64 { try self.base.accountRevision() }
    func credential(serial: String) throws -> StoredCredential? { try self.base.credential(serial: serial) }
    func credentials(accountID: String) throws -> [StoredCredential] { try self.base.credentials(accountID: accountID) }
    func revokedSerials(notExpiredAt now: Int64) throws -> Set<String> {
        try self.base.revokedSerials(notExpiredAt: now)
    }
    func enrollment(codeHash: [UInt8]) throws -> StoredEnrollment? { try self.base.enrollment(codeHash: codeHash) }
    func usableEnrollments(accountID: String, at now: Int64) throws -> [StoredEnrollment] {
        try self.base.usableEnrollments(accountID: accountID, at: now)
    }
    func auditSize() throws -> UInt64 { try self.base.auditSize() }
    func auditEntries(_ query: AuditQuery) throws -> [Haven_V1_AuditEntry] { try self.base.auditEntries(query) }
    func storedAuditEntries(from sequence: UInt64, limit: Int) throws -> [StoredAuditEntry] {
        try self.base.storedAuditEntries(from: sequence, limit: limit)
    }
    func storedHashes() throws -> [String: [UInt8]] { try self.base.storedHashes() }
    func reportFactDifferences(limit: Int) throws -> [String] { try self.base.reportFactDifferences(limit: limit) }
    func changeHashes(from sequence: UInt64, limit: Int) throws -> [(UInt64, [UInt8])] {
        try self.base.changeHashes(from: sequence, limit: limit)
    }
    func checkpoints(below size: UInt64?, limit: Int) throws -> [Haven_V1_AuditCheckpoint] {
        try self.base.checkpoints(below: size, limit: limit)
    }
    func masterKeyFingerprint() throws -> String? { try self.base.masterKeyFingerprint() }
    func hasRecordKey(kind: RecordKind, id: String) throws -> Bool { try self.base.hasRecordKey(kind: kind, id: id) }
    func insert<R: StoredRecord>(_ record: R, identity: Haven_V1_SurvivorIdentity?) throws {
        try self.base.insert(record, identity: identity)
    }
    func update<R: StoredRecord>(_ record: R, expectedVersion: UInt64, sealed: SealedChange) throws {
        try self.base.update(record, expectedVersion: expectedVersion, sealed: sealed)
    }
    var pendingAudit: Bool { self.base.pendingAudit }
    func appendAudit(_ entry: NewAuditEntry) throws -> Haven_V1_AuditEntry { try self.base.appendAudit(entry) }
    func saveCheckpoint(_ checkpoint: Haven_V1_AuditCheckpoint) throws { try self.base.saveCheckpoint(checkpoint) }
    func rotateKeys(master: MasterKeyMaterial?, offices: [String]) throws -> KeyRotation {
        try self.base.rotateKeys(master: master, offices: offices)
    }
    func appendChange(_ entry: NewChange) throws -> UInt64 { try self.base.appendChange(entry) }
    func nextCounterValue(_ name: String) throws -> UInt64 { try self.base.nextCounterValue(name) }
    func recordIdempotency(_ record: IdempotencyRecord) throws { try self.base.recordIdempotency(record) }
    func saveAccount(_ account: Account) throws { try self.base.saveAccount(account) }
    func saveCredential(_ credential: StoredCredential) throws { try self.base.saveCredential(credential) }
    func saveEnrollment(_ enrollment: StoredEnrollment) throws { try self.base.saveEnrollment(enrollment) }
}
