import CHavenSQLite
import Foundation
import GRDB
import GRDBSQLite
import HavenProtocol
import Logging
import SwiftProtobuf
import Synchronization
import Tracing

/// The embedded store: one SQLite file in the data directory, through GRDB.
///
/// One `DatabasePool` in WAL mode, so reads never wait for the writer.
/// `PRAGMA synchronous = FULL` on the writer: GRDB chooses NORMAL for WAL,
/// which can lose the last transactions in a power cut; Haven acknowledges a
/// write only once it is durable, so the store sets FULL back after opening
/// and refuses to start if it does not read back as FULL.
package final class SQLiteStore: GroupCommittedStore {
    private let pool: DatabasePool
    /// Where storage failures are reported, with their detail.
    let logger: Logger
    /// One line per kind of failure every ten seconds, however many calls hit it.
    let failures = RateLimitedLog(interval: .seconds(10))
    /// For the store's own extensions (backup, integrity check).
    var databasePool: DatabasePool { self.pool }
    private let notifier = ChangeNotifier()
    /// The master keys sealed data is opened with (nil: nothing sealed can be read or written).
    package let keys: StoreKeys?
    private let auditing: Bool
    /// Spans, commit latency and failures.
    let instruments: StoreInstruments
    /// The last write that failed because the storage could not take it, until a write succeeds.
    let lastUnwritable = Mutex<(kind: String, at: ContinuousClock.Instant)?>(nil)
    /// Writes waiting for the writer (group commit).
    private let waiting = Mutex(GroupCommitQueue<PendingWrite<SQLiteConnection>>())
    /// Copies the write-ahead log into the database off the writer, while it
    /// runs (a `Service`); the writer checkpoints its own commits otherwise.
    package let checkpointer: WALCheckpointer

    /// The writer's page cache, in KiB (SQLite's default is 2,000). Writes
    /// to many cases touch many leaves of the timeline, index and fact
    /// B-trees; with the default the writer read pages back from the
    /// operating system on most writes (`profile-calls write 20000 256 100`,
    /// 100 cases as the end-to-end write benchmarks use: about 12 % more
    /// writes per second with 16 MiB). Readers keep the default.
    static let writerCacheKiB = 16384

    /// SQLite configured for this process once, before its first connection
    /// (``haven_sqlite_configure``): a process that opened SQLite before any
    /// store (a test, a benchmark's baseline) keeps SQLite's defaults, which
    /// are slower, not less safe.
    private static let configured: Int32 = {
        let code = haven_sqlite_configure()
        _ = haven_sqlite_install_wal_gathering()
        return code
    }()

    /// SQLite configured, and the gathering VFS installed, as before a
    /// store's first connection (for tests that open connections of their own).
    package static func configureSQLite() { _ = Self.configured }

    /// Writes SQLite made to the writer's gathered write-ahead log, and
    /// writes that reached the file for them, since the store opened; nil
    /// when its log is not gathered.
    package func logWrites() -> (appends: Int, writes: Int)? {
        self.pool.writeWithoutTransaction { db in
            var appends: Int64 = 0
            var writes: Int64 = 0
            guard haven_sqlite_wal_counts(db.sqliteConnection, &appends, &writes) == SQLITE_OK else { return nil }
            return (Int(appends), Int(writes))
        }
    }

    /// Has the writer's write-ahead log gathered (``haven_sqlite_gather_wal``):
    /// the pages a commit appends reach the file at its sync in one write
    /// per 128 KiB, not two writes a page. The writer commits with FULL, as
    /// that needs; every group commit is checked to have left nothing
    /// unwritten (``commitWaiting(_:)``). Without it (a VFS of another's,
    /// installed first), every page is written on its own, as SQLite does.
    private static func gatherLog(_ db: Database, _ logger: Logger) throws {
        // A read opens the log, if no transaction has yet.
        _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master")
        let code = haven_sqlite_gather_wal(db.sqliteConnection)
        if code != SQLITE_OK {
            logger.warning(
                "the write-ahead log's pages are written one by one",
                metadata: ["sqlite_code": "\(code)"]
            )
        }
    }

    /// Opens (creating if needed) the database at `path` and runs migrations.
    ///
    /// - Parameters:
    ///   - path: The database file.
    ///   - keys: The master key(s); without them nothing sealed opens.
    ///   - auditing: Only the benchmark that measures the audit trail's cost
    ///     turns it off, through `HavenEmbedding`'s SPI; no configuration of
    ///     havend or haven-admin reaches it.
    ///   - instruments: Where transactions are traced and measured.
    ///   - checkpoints: When the write-ahead log is copied into the database,
    ///     and when the writer does it whatever the ``checkpointer`` does.
    /// - Throws: ``HavenError`` UNAVAILABLE when it cannot be opened or is not
    ///   durable; DATA_LOSS when its schema is newer than this software.
    package init(
        path: String,
        keys: StoreKeys? = nil,
        auditing: Bool = true,
        logger: Logger = Logger(label: "haven.store"),
        instruments: StoreInstruments = .none,
        checkpoints: WALCheckpointPolicy = .standard
    ) throws {
        self.instruments = instruments
        self.keys = keys
        self.auditing = auditing
        self.logger = logger
        self.checkpointer = WALCheckpointer(path: path, policy: checkpoints, logger: logger, instruments: instruments)
        _ = Self.configured
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // Freed pages (an erased key, a replaced sealed box) are overwritten with zeros.
            try db.execute(sql: "PRAGMA secure_delete = ON")
            // Temporary files in memory: above all the sub-journal of a
            // savepoint (group commit runs writes in savepoints after a failed
            // one), which SQLite otherwise writes to a temporary file, page by
            // page — 57 pwrite calls per write when every write had one, with
            // pages of records in them, on the disk of /tmp.
            try db.execute(sql: "PRAGMA temp_store = MEMORY")
        }
        do {
            self.pool = try DatabasePool(path: path, configuration: configuration)
            try self.pool.barrierWriteWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = FULL")
                try db.execute(sql: "PRAGMA cache_size = -\(Self.writerCacheKiB)")
                self.checkpointer.watch(db)
                try Self.gatherLog(db, logger)
            }
            let mode = try self.synchronousMode()
            guard mode == 2 else {
                throw HavenError(
                    code: .unavailable,
                    message: "database is not durable: PRAGMA synchronous is \(mode), not FULL (2)"
                )
            }
            try Self.migrator.migrate(self.pool)
            try self.pool.write { db in
                let tx = SQLTransaction(GRDBConnection(db: db), keys: keys, auditing: auditing)
                try Self.adoptExisting(tx)
                // Facts first: the timelines still in records get theirs as they move.
                try SQLTransaction.fillReportFacts(tx)
                try Self.moveTimelines(tx)
                try SQLTransaction.moveServices(tx)
                try SQLTransaction.moveAccusedHistory(tx)
            }
        } catch let error as HavenError {
            throw error
        } catch {
            throw HavenError(code: .unavailable, message: "cannot open the database: \(Self.describe(error))")
        }
        let latest = try self.pool.read { db in try Self.latestSequence(db) }
        self.notifier.publish(latest)
    }

    /// `PRAGMA synchronous` as the writer connection reads it (2 = FULL).
    package func synchronousMode() throws -> Int {
        try self.pool.writeWithoutTransaction { db in
            try Int.fetchOne(try db.cachedStatement(sql: "PRAGMA synchronous")) ?? -1
        }
    }

    /// Caps the database's size in pages (`PRAGMA max_page_count` on the
    /// writer; nil lifts the cap): a write that needs more space fails as on a
    /// full disk. The storage-failure tests reproduce a full disk with it.
    package func limitPages(_ pages: Int?) throws {
        try self.pool.barrierWriteWithoutTransaction { db in
            let current = try Int.fetchOne(try db.cachedStatement(sql: "PRAGMA page_count")) ?? 0
            try db.execute(sql: "PRAGMA max_page_count = \(pages.map { max($0, current) } ?? 1_073_741_823)")
        }
    }

    /// `PRAGMA journal_mode` of the database.
    package func journalMode() throws -> String {
        try self.pool.read { db in try String.fetchOne(try db.cachedStatement(sql: "PRAGMA journal_mode")) ?? "" }
    }

    package func read<T: Sendable>(_ body: @escaping @Sendable (any StoreReader) throws -> T) async throws -> T {
        let keys = self.keys
        return try await self.instruments.tracer.withSpan("store.read", ofKind: .internal) { _ in
            do {
                return try await self.pool.read { db in try body(SQLTransaction(GRDBConnection(db: db), keys: keys)) }
            } catch {
                throw self.failed(error)
            }
        }
    }

    /// Runs `body` in the next group commit (``GroupCommit``): with the writes
    /// that arrive while the writer is busy, in one transaction and one fsync
    /// (a write that fails is undone alone, as ``GroupCommit`` says). Returns
    /// once the commit covering it is durable.
    ///
    /// Only `cancellation`, set before the writer takes the write up, keeps
    /// it from running (it then fails CANCELLED). Once taken up, the write is
    /// not bound to the caller: it commits (or fails) with its group, and the
    /// caller learns which. Cancelling one caller must not interrupt the
    /// others' transaction. (``GroupCommittedStore`` makes
    /// ``write(_:)`` and ``writeUnlessCancelled(_:)`` of this.)
    package func submit<T: Sendable>(
        _ body: @escaping @Sendable (any StoreWriter) throws -> T,
        cancellation: WriteCancellation?
    ) async throws -> T {
        let (keys, auditing) = (self.keys, self.auditing)
        return try await self.instruments.tracer.withSpan("store.write", ofKind: .internal) { _ in
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                let write = PendingWrite<SQLiteConnection>(
                    run: { connection in
                        let value = try SQLTransaction.audited(
                            SQLTransaction(
                                GRDBConnection(db: connection.db),
                                keys: keys,
                                auditing: auditing,
                                group: connection.state
                            ),
                            body
                        )
                        return { continuation.resume(returning: value) }
                    },
                    fail: { error in continuation.resume(throwing: self.failed(error)) },
                    cancellation: cancellation
                )
                if self.waiting.withLock({ $0.enqueue(write) }) { self.runWaiting() }
            }
        }
    }

    /// Writes submitted and not yet taken into a group (for tests that line
    /// writes up behind a busy writer).
    package var waitingWrites: Int { self.waiting.withLock { $0.count } }

    /// Asks the writer to run the writes waiting (``GroupCommitQueue``).
    private func runWaiting() {
        self.pool.asyncWriteWithoutTransaction { db in self.commitWaiting(db) }
    }

    /// On the writer: runs the writes waiting as one group (asking again if
    /// more wait than a group holds), publishes the new changes, then
    /// acknowledges each committed write.
    private func commitWaiting(_ db: Database) {
        let (group, more) = self.waiting.withLock { $0.takeGroup() }
        if more { self.runWaiting() }
        guard !group.isEmpty else { return }
        let connection = SQLiteConnection(db: db)
        let outcome = GroupCommit.run(group, on: connection)
        self.instruments.ran(outcome)
        if outcome.committed > 0 {
            // A commit syncs the log, which writes what was gathered, before
            // it is published: anything left would be frames readers may be
            // told of before they are in the file. The writer no longer
            // committing with FULL is the one way there; stop rather than
            // serve that. (After a rollback, pages spilled by the undone
            // transaction may wait; nothing refers to them.)
            precondition(
                haven_sqlite_wal_waiting(db.sqliteConnection) == 0,
                "a commit left write-ahead log pages unwritten: the writer does not commit with synchronous = FULL"
            )
            self.lastUnwritable.withLock { $0 = nil }
            if let latest = connection.committedSequence { self.notifier.publish(latest) }
        }
        for acknowledge in outcome.acknowledgements { acknowledge() }
    }

    package func latestChangeSequence() async throws -> UInt64 {
        try await self.read { try $0.latestChangeSequence() }
    }

    package func changeNotifications() -> AsyncStream<UInt64> {
        self.notifier.subscribe()
    }

    /// Brings a database written before the audit trail under it: identities
    /// sealed in the old format are sealed again under their own keys, and
    /// entries (`store.adopt`, by `havend`) commit to every record, account
    /// and change that exists. Runs once, when the trail is empty.
    private static func adoptExisting(_ tx: SQLTransaction) throws {
        guard tx.auditing, try tx.auditSize() == 0 else { return }
        let sql = tx.sql
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        if tx.keys != nil {
            let legacy = try sql.rows("\(RecordRow.select) WHERE kind = 'survivor' AND substr(secret, 1, 1) = x'01'")
                .map(RecordRow.init)
            for var row in legacy {
                let plaintext = try tx.openIdentity(
                    Array(row.secret!),
                    survivorID: row.id,
                    office: row.officeCode ?? "",
                    version: UInt64(row.version)
                )
                var survivor: Haven_V1_Survivor = try tx.decode(row)
                survivor.version = UInt64(row.version)
                row.secret = Data(try tx.sealIdentityBytes(plaintext, of: survivor))
                try row.update(in: sql)
            }
            // Free text stored before it was sealed: sealed now, in records and in history.
            try Self.sealLegacy(Haven_V1_Case.self, tx)
            try Self.sealLegacy(Haven_V1_Survivor.self, tx)
            try Self.sealLegacy(Haven_V1_Referral.self, tx)
            for row in try sql.rows("SELECT sequence, body FROM change WHERE recordKind IS NULL") {
                var event = try Haven_V1_ChangeEvent(serializedBytes: try row["body"] as Data)
                guard let (kind, id, office, version, fields) = FieldSealing.take(from: &event) else { continue }
                let sealed = try tx.sealFields(fields, kind: kind, id: id, office: office, version: version)
                try sql.execute(
                    "UPDATE change SET body = ?, recordKind = ?, recordID = ?, sealed = ? WHERE sequence = ?",
                    [
                        try event.serializedBytes() as Data, kind.rawValue, id, sealed.map { Data($0) },
                        try row["sequence"] as Int64,
                    ]
                )
            }
        }
        var resources: [Haven_V1_AuditResource] = []
        for (key, hash) in try tx.storedHashes().sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
            var resource = Haven_V1_AuditResource()
            resource.kind = parts[0]
            resource.id = parts[1]
            resource.storedHash = Data(hash)
            if parts[0] != "account",
                let version = try sql.value(
                    Int64.self,
                    "SELECT version FROM record WHERE kind = ? AND id = ?",
                    [parts[0], parts[1]]
                )
            {
                resource.version = UInt64(version)
            }
            resources.append(resource)
        }
        var changes = try tx.changeHashes(from: 0, limit: Int.max)[...]
        guard !resources.isEmpty || !changes.isEmpty else { return }
        var remaining = resources[...]
        while !remaining.isEmpty || !changes.isEmpty {
            for (sequence, hash) in changes.prefix(500) { tx.journal.appended(change: sequence, hash: hash) }
            changes = changes.dropFirst(500)
            try tx.appendAudit(
                NewAuditEntry(
                    atUnixMs: now,
                    principalID: "havend",
                    action: "store.adopt",
                    detail: "records, accounts and changes written before the audit trail existed",
                    resources: Array(remaining.prefix(500))
                )
            )
            remaining = remaining.dropFirst(500)
        }
    }

    /// Re-stores every record of a kind whose body still holds sealable free
    /// text, with that text sealed beside it (same version, same identity).
    private static func sealLegacy<R: StoredRecord>(_ type: R.Type, _ tx: SQLTransaction) throws {
        let rows = try tx.sql.rows("\(RecordRow.select) WHERE kind = ? AND sealed IS NULL", [R.recordKind.rawValue])
            .map(RecordRow.init)
        for row in rows {
            var record: R = try tx.decode(row)
            guard !FieldSealing.take(&record).isEmpty else { continue }
            var sealed = try tx.row(try tx.decode(row) as R, sealedIdentity: row.secret)
            sealed.secret = row.secret
            try sealed.update(in: tx.sql)
        }
    }

    static func latestSequence(_ db: Database) throws -> UInt64 {
        UInt64(try Int64.fetchOne(try db.cachedStatement(sql: "SELECT COALESCE(MAX(sequence), 0) FROM change")) ?? 0)
    }

    /// Maps errors to ``HavenError`` for clients: a code that says whether
    /// retrying can help and a message without internal detail (never SQLite's
    /// text, never statement arguments, which can hold record content). The
    /// detail goes to the operator's log instead, through ``failed(_:)``.
    static func translate(_ error: any Error) -> HavenError {
        switch error {
        case let error as HavenError: return error
        case is CancellationError:
            return HavenError(code: .cancelled, message: "cancelled before the transaction committed")
        case let error as DatabaseError:
            switch error.resultCode.primaryResultCode {
            case .SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_PROTOCOL:
                // Another writer holds the database for longer than the busy timeout: a retry can succeed.
                var detail = Haven_V1_ErrorDetail()
                detail.retry.retryAfterMs = 500
                return HavenError(code: .unavailable, message: "storage busy: retry shortly", details: [detail])
            case .SQLITE_FULL:
                // Nothing was written (SQLite rolls the transaction back); retrying cannot help until space is freed.
                return HavenError(
                    code: .resourceExhausted,
                    message:
                        "the server's storage is full: nothing was written; retry only after an operator has freed space"
                )
            default:
                // Read-only or unopenable files, I/O errors, corruption, or a fault of the server.
                return HavenError(
                    code: .internal,
                    message:
                        "the server cannot use its storage: an operator must act (see the server's log); a write that failed may be retried with its idempotency key once the server is healthy"
                )
            }
        default:
            return HavenError(code: .internal, message: "internal storage error (see the server's log)")
        }
    }

    /// Translates a failure for the client, and logs what the operator needs
    /// (SQLite's result code and message, never statement arguments) at most
    /// once per kind every ten seconds.
    func failed(_ error: any Error) -> HavenError {
        let translated = Self.translate(error)
        if let error = error as? DatabaseError {
            self.instruments.failed(kind: Self.kind(of: error.resultCode).label)
            if Self.unwritable.contains(error.resultCode.primaryResultCode.rawValue) {
                self.lastUnwritable.withLock { $0 = (Self.kind(of: error.resultCode).log, .now) }
            }
        }
        if translated.code == .internal || translated.code == .resourceExhausted
            || (translated.code == .unavailable && error is DatabaseError)
        {
            let kind = (error as? DatabaseError).map { Self.kind(of: $0.resultCode).log } ?? "\(type(of: error))"
            self.failures.log(
                "storage \(kind)",
                "storage failure",
                level: translated.code == .unavailable ? .warning : .error,
                metadata: ["code": "\(translated.code)", "detail": "\(Self.describe(error))"],
                to: self.logger
            )
        }
        return translated
    }

    /// What a failure is called: in the log (`full`, `read-only`, `I/O error`, …)
    /// and as the label of `haven_store_failures_total` (`full`, `read_only`, `io_error`, …).
    static func kind(of code: ResultCode) -> (log: String, label: String) {
        switch code.primaryResultCode {
        case .SQLITE_FULL: ("full", "full")
        case .SQLITE_BUSY, .SQLITE_LOCKED: ("busy", "busy")
        case .SQLITE_READONLY: ("read-only", "read_only")
        case .SQLITE_IOERR: ("I/O error", "io_error")
        case .SQLITE_CANTOPEN: ("cannot open", "cannot_open")
        case .SQLITE_CORRUPT, .SQLITE_NOTADB: ("corrupt", "corrupt")
        case .SQLITE_CONSTRAINT: ("constraint", "constraint")
        default: ("SQLite \(code.primaryResultCode.rawValue)", "other")
        }
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? DatabaseError {
            // The result code and SQLite's own message; never the SQL arguments.
            return "SQLite \(error.resultCode): \(error.message ?? "no message")"
        }
        return String(describing: type(of: error))
    }
}

/// The writer connection, as group commit drives it.
final class SQLiteConnection: GroupCommitConnection {
    let db: Database
    let state = GroupTransactionState()
    /// The change log's last sequence as of the last commit.
    private(set) var committedSequence: UInt64?

    init(db: Database) {
        self.db = db
    }

    func begin() throws {
        self.state.forget()
        try self.db.beginTransaction(.immediate)
    }
    // The savepoints' statements are prepared once, as the writes' are.
    func savepoint() throws { try self.db.cachedStatement(sql: "SAVEPOINT haven_write").execute() }
    func releaseSavepoint() throws { try self.db.cachedStatement(sql: "RELEASE SAVEPOINT haven_write").execute() }
    func rollbackToSavepoint() throws {
        self.state.forget()
        try self.db.cachedStatement(sql: "ROLLBACK TO SAVEPOINT haven_write").execute()
        try self.db.cachedStatement(sql: "RELEASE SAVEPOINT haven_write").execute()
    }
    var isInsideTransaction: Bool { self.db.isInsideTransaction }
    /// Rows inserted, updated and deleted by the connection's completed
    /// statements (`sqlite3_total_changes64`): a statement that fails undoes
    /// its own changes, unless SQLite rolls the whole transaction back.
    var changes: Int { self.db.totalChangesCount }
    func commit() throws {
        // Under the write lock, the change log's last sequence is what this
        // commit makes visible: read inside the transaction, not in a read of its own after it.
        let latest = try? SQLiteStore.latestSequence(self.db)
        try self.db.commit()
        self.committedSequence = latest
    }
    func rollback() { try? self.db.rollback() }
}

/// Fans "a change committed" out to the feed streams.
final class ChangeNotifier: Sendable {
    private struct State {
        var latest: UInt64 = 0
        var subscribers: [Int: AsyncStream<UInt64>.Continuation] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())

    func publish(_ latest: UInt64) {
        let subscribers = self.state.withLock { state -> [AsyncStream<UInt64>.Continuation] in
            guard latest > state.latest else { return [] }
            state.latest = latest
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers { subscriber.yield(latest) }
    }

    func subscribe() -> AsyncStream<UInt64> {
        let (stream, continuation) = AsyncStream.makeStream(of: UInt64.self, bufferingPolicy: .bufferingNewest(1))
        let id = self.state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            state.subscribers[id] = continuation
            continuation.yield(state.latest)
            return id
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }
}

extension SQLiteStore {
    /// Runs a write transaction on the calling thread, for set-up code that
    /// runs before any concurrency exists (initializing a data directory).
    package func writeSynchronously<T>(_ body: (any StoreWriter) throws -> T) throws -> T {
        let (keys, auditing) = (self.keys, self.auditing)
        do {
            return try self.pool.write { db in
                try SQLTransaction.audited(SQLTransaction(GRDBConnection(db: db), keys: keys, auditing: auditing), body)
            }
        } catch {
            throw self.failed(error)
        }
    }
}
