import Dispatch
import Foundation
import HavenProtocol
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import ServiceLifecycle
import Synchronization
import Tracing

/// The store on PostgreSQL, for deployments that outgrow one machine: several
/// havend instances on one database.
///
/// It runs the same transaction logic as the SQLite store (``SQLTransaction``)
/// against the same schema in PostgreSQL's dialect, so every guarantee of the
/// storage protocol holds in both (one conformance suite checks it):
///
/// - **Writes** go through group commit (``GroupCommit``) on one writer
///   connection per instance: the writes waiting share a transaction (a write
///   that fails is undone alone), acknowledged after the COMMIT (`synchronous_commit`
///   on: durable, and on a synchronous standby if the cluster has one).
///   Every write transaction first takes one transaction-level advisory lock
///   (`pg_advisory_xact_lock`), so the write transactions of *all* instances
///   run one after another: compare-and-set versions, gap-free counters and the
///   audit trail's one linear hash chain hold across instances exactly as
///   they do for SQLite's single writer, and change-log sequences commit in
///   order (a feed never skips a change committed late).
/// - **Reads** run in `REPEATABLE READ READ ONLY` snapshots on connections
///   of a `PostgresClient` pool (run as a `Service` by ``run()``), never
///   waiting for the writer.
/// - **Change notifications** reach every instance: each group's COMMIT
///   carries a `NOTIFY haven_change` with the latest sequence, which every
///   instance's listener (in ``run()``) publishes to its feed subscribers.
///
/// The shared logic is synchronous; its statements wait for their results on
/// the store's own threads (the writer queue and a pool of blocking threads),
/// never on an event loop or the cooperative pool.
package final class PostgresStore: GroupCommittedStore, Service {
    package let location: PostgresLocation
    /// The master keys sealed data is opened with (nil: nothing sealed can be read or written).
    package let keys: StoreKeys?
    private let auditing: Bool
    let logger: Logger
    let instruments: StoreInstruments
    let failures = RateLimitedLog(interval: .seconds(10))
    private let client: PostgresClient
    private let eventLoopGroup: any EventLoopGroup
    /// Threads on which reads' bodies wait for their statements.
    private let blocking: NIOThreadPool
    /// The writer: one serial queue and its connection (touched only on the queue).
    private let writerQueue = DispatchQueue(label: "haven.store.postgres.writer")
    private let writer = Mutex<PostgresConnection?>(nil)
    /// The writer connection's prepared statements (touched only on the queue).
    private let writerStatements = Mutex<PostgresStatements?>(nil)
    /// The prepared statements of the read pool's connections, by connection.
    private let readStatements = Mutex<[PostgresConnection.ID: PostgresStatements]>([:])
    private let waiting = Mutex(GroupCommitQueue<PendingWrite<PostgresGroupWriter>>())
    private let notifier = ChangeNotifier()
    private let connectionIDs = Atomic<Int>(1)
    /// Whether ``run()`` runs the read pool: before it does (start-up), reads
    /// go through the writer's connection instead.
    private let poolRunning = Atomic<Bool>(false)
    /// Set once the store has closed: nothing connects again.
    private let shutDown = Atomic<Bool>(false)
    /// The last write that failed because the database could not take it, until a write succeeds.
    private let lastUnwritable = Mutex<(kind: String, at: ContinuousClock.Instant)?>(nil)

    /// The advisory lock every write transaction of every instance takes first.
    static let writeLock: Int64 = 0x4861_7665_6E57_7269  // "HavenWri"
    /// The channel commits are announced on.
    static let changeChannel = "haven_change"

    private init(
        location: PostgresLocation,
        keys: StoreKeys?,
        auditing: Bool,
        logger: Logger,
        instruments: StoreInstruments,
        readConnections: Int
    ) throws {
        self.location = location
        self.keys = keys
        self.auditing = auditing
        self.logger = logger
        self.instruments = instruments
        self.eventLoopGroup = MultiThreadedEventLoopGroup.singleton
        self.client = PostgresClient(
            configuration: try location.clientConfiguration(maximumConnections: readConnections),
            eventLoopGroup: self.eventLoopGroup,
            backgroundLogger: logger
        )
        self.blocking = NIOThreadPool(numberOfThreads: readConnections)
        self.blocking.start()
    }

    /// Connects, brings the schema up to date (under the write lock, so
    /// instances starting together migrate once) and returns the store.
    /// Until ``run()`` runs the read pool, reads go through the writer's
    /// connection (start-up: a composition reads before its services run).
    ///
    /// - Throws: ``HavenError`` UNAVAILABLE when the database cannot be
    ///   reached; DATA_LOSS when its schema is newer than this software.
    package static func open(
        _ location: PostgresLocation,
        keys: StoreKeys? = nil,
        auditing: Bool = true,
        logger: Logger = Logger(label: "haven.store"),
        instruments: StoreInstruments = .none,
        readConnections: Int = 16
    ) async throws -> PostgresStore {
        let store = try PostgresStore(
            location: location,
            keys: keys,
            auditing: auditing,
            logger: logger,
            instruments: instruments,
            readConnections: readConnections
        )
        do {
            let (keys, auditing) = (store.keys, store.auditing)
            let latest = try await store.onWriter { sql in
                try Self.migrate(sql)
                try SQLTransaction.fillReportFacts(SQLTransaction(sql, keys: nil))
                try SQLTransaction.moveServices(SQLTransaction(sql, keys: keys, auditing: auditing))
                try SQLTransaction.moveAccusedHistory(SQLTransaction(sql, keys: keys, auditing: auditing))
                return UInt64(try sql.value(Int64.self, "SELECT COALESCE(MAX(sequence), 0) FROM change") ?? 0)
            }
            store.notifier.publish(latest)
        } catch {
            await store.close()
            throw store.failed(error)
        }
        return store
    }

    /// Opens the store, runs `body` with it (reads on the writer's
    /// connection: the pool does not run), and closes it, whether `body`
    /// returns or throws: for one-off work such as a copy.
    package static func using<T>(
        _ location: PostgresLocation,
        keys: StoreKeys?,
        _ body: (PostgresStore) async throws -> T
    ) async throws -> T {
        let store = try await Self.open(location, keys: keys)
        do {
            let value = try await body(store)
            await store.close()
            return value
        } catch {
            await store.close()
            throw error
        }
    }

    /// Runs the read pool and the change listener until cancelled (or the
    /// service group shuts down), then closes every connection.
    package func run() async throws {
        defer { self.poolRunning.store(false, ordering: .releasing) }
        await withDiscardingTaskGroup { group in
            group.addTask {
                // Reads move to the pool as it starts running (leased before, they would wait and warn).
                self.poolRunning.store(true, ordering: .releasing)
                await self.client.run()
            }
            group.addTask { await self.listenForChanges() }
            // In a service group the store is registered before the server,
            // so it shuts down after the server has drained.
            try? await gracefulShutdown()
            group.cancelAll()
        }
        await self.close()
    }

    /// Runs the store (``run()``) around `body`, then stops it: for tools and
    /// tests that use a store outside a service group.
    package func whileRunning(_ body: () async throws -> Void) async throws {
        try await withThrowingTaskGroup { group in
            group.addTask { try await self.run() }
            do {
                try await body()
            } catch {
                group.cancelAll()
                throw error
            }
            group.cancelAll()
        }
    }

    /// Closes the writer's connection and stops the blocking threads: for a
    /// store that will not run (``run()`` closes its own on return).
    package func close() async {
        await self.closeWriter()
        try? await self.blocking.shutdownGracefully()
    }

    /// Closes the writer's connection once the writes queued before have run.
    private func closeWriter() async {
        let connection = await withCheckedContinuation { continuation in
            self.writerQueue.async {
                self.shutDown.store(true, ordering: .releasing)
                continuation.resume(
                    returning: self.writer.withLock { connection in
                        defer { connection = nil }
                        return connection
                    }
                )
            }
        }
        try? await connection?.close()
    }

    // MARK: Reads

    package func read<T: Sendable>(_ body: @escaping @Sendable (any StoreReader) throws -> T) async throws -> T {
        let keys = self.keys
        return try await self.instruments.tracer.withSpan("store.read", ofKind: .internal) { _ in
            try await self.readSQL { sql in try body(SQLTransaction(sql, keys: keys)) }
        }
    }

    /// Runs `body` in a `REPEATABLE READ READ ONLY` snapshot on a connection
    /// of the read pool, on one of the store's blocking threads (before
    /// ``run()`` runs the pool: on the writer's connection).
    func readSQL<T: Sendable>(_ body: @escaping @Sendable (PostgresSQLConnection) throws -> T) async throws -> T {
        let (logger, blocking) = (self.logger, self.blocking)
        guard self.poolRunning.load(ordering: .acquiring) else {
            // Start-up (the composition reads before its services run): on the writer's connection.
            do {
                return try await self.onWriter(readOnly: true, body)
            } catch {
                throw self.failed(error)
            }
        }
        func pooled() async throws -> T {
            try await self.client.withConnection { connection in
                let statements = self.statements(for: connection)
                return try await blocking.runIfActive {
                    try Self.transaction(
                        PostgresSQLConnection(connection: connection, logger: logger, statements: statements),
                        readOnly: true,
                        body
                    )
                }
            }
        }
        do {
            return try await pooled()
        } catch let error as PostgresServerError where error.sqlState == "0A000" {
            // A table changed under a prepared statement (another instance
            // migrated the schema): every pooled connection's statements are
            // stale. They are forgotten, and the read runs once more.
            self.readStatements.withLock { $0.removeAll() }
            do {
                return try await pooled()
            } catch {
                throw self.failed(error)
            }
        } catch {
            throw self.failed(error)
        }
    }

    package func latestChangeSequence() async throws -> UInt64 {
        try await self.read { try $0.latestChangeSequence() }
    }

    package func changeNotifications() -> AsyncStream<UInt64> {
        self.notifier.subscribe()
    }

    // MARK: Writes

    /// Runs `body` in the next group commit of this instance's writer, under
    /// the write lock all instances share. Returns once the COMMIT covering it
    /// has returned. Like SQLite's, only `cancellation`, set before the
    /// writer takes the write up, keeps it from running; once taken up it is
    /// not bound to the caller: cancelling one caller must not abort the
    /// others' transaction. (``GroupCommittedStore`` makes ``write(_:)`` and
    /// ``writeUnlessCancelled(_:)`` of this.)
    package func submit<T: Sendable>(
        _ body: @escaping @Sendable (any StoreWriter) throws -> T,
        cancellation: WriteCancellation?
    ) async throws -> T {
        let (keys, auditing) = (self.keys, self.auditing)
        return try await self.instruments.tracer.withSpan("store.write", ofKind: .internal) { _ in
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                let write = PendingWrite<PostgresGroupWriter>(
                    run: { writer in
                        let value = try SQLTransaction.audited(
                            SQLTransaction(writer.sql, keys: keys, auditing: auditing, group: writer.state),
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

    /// Writes submitted and not yet taken into a group.
    package var waitingWrites: Int { self.waiting.withLock { $0.count } }

    /// Asks the writer queue to run the writes waiting (``GroupCommitQueue``).
    private func runWaiting() {
        self.writerQueue.async { self.commitWaiting() }
    }

    /// On the writer queue: runs the writes waiting as one group (asking
    /// again if more wait than a group holds), publishes the new changes,
    /// then acknowledges each committed write.
    private func commitWaiting() {
        let (group, more) = self.waiting.withLock { $0.takeGroup() }
        if more { self.runWaiting() }
        guard !group.isEmpty else { return }
        let writer: PostgresGroupWriter
        do {
            writer = PostgresGroupWriter(
                sql: try self.writerSQL()
            )
        } catch {
            for write in group { write.fail(error) }
            return
        }
        let outcome = GroupCommit.run(group, on: writer)
        self.instruments.ran(outcome)
        if writer.sql.connection.isClosed { self.writer.withLock { $0 = nil } }
        if outcome.committed > 0 {
            self.lastUnwritable.withLock { $0 = nil }
            if let latest = writer.committedSequence { self.notifier.publish(latest) }
        }
        for acknowledge in outcome.acknowledgements { acknowledge() }
    }

    /// The writer's connection with its prepared statements. On the writer queue only.
    private func writerSQL() throws -> PostgresSQLConnection {
        let connection = try self.writerConnection()
        let statements = self.writerStatements.withLock { statements in
            if let known = statements, known.connection === connection { return known }
            let fresh = PostgresStatements(connection: connection)
            statements = fresh
            return fresh
        }
        return PostgresSQLConnection(
            connection: connection,
            logger: self.logger,
            statements: statements,
            effects: StatementEffects()
        )
    }

    /// How many statements the writer's connection holds prepared.
    package var preparedStatements: Int {
        self.writerStatements.withLock { $0?.count ?? 0 }
    }

    /// How many statements the read pool's open connections hold prepared.
    package var preparedReadStatements: Int {
        self.readStatements.withLock { $0.values.filter { !$0.connection.isClosed }.reduce(0) { $0 + $1.count } }
    }

    /// A read pool connection's prepared statements. The entries of
    /// connections the pool has closed go as a new one arrives.
    private func statements(for connection: PostgresConnection) -> PostgresStatements {
        self.readStatements.withLock { all in
            if let known = all[connection.id], known.connection === connection { return known }
            all = all.filter { !$0.value.connection.isClosed }
            let fresh = PostgresStatements(connection: connection)
            all[connection.id] = fresh
            return fresh
        }
    }

    /// The writer's connection, connected (again) if it is not open. On the writer queue only.
    private func writerConnection() throws -> PostgresConnection {
        if let connection = self.writer.withLock({ $0 }), !connection.isClosed { return connection }
        guard !self.shutDown.load(ordering: .acquiring) else {
            throw HavenError(code: .unavailable, message: "the server is shutting down: retry on another instance")
        }
        let connection: PostgresConnection
        do {
            connection = try PostgresConnection.connect(
                on: self.eventLoopGroup.any(),
                configuration: try self.location.connectionConfiguration(),
                id: self.connectionIDs.wrappingAdd(1, ordering: .relaxed).oldValue,
                logger: self.logger
            ).wait()
        } catch {
            // Logged (without the URL's password) and reported by readiness until a write succeeds.
            self.lastUnwritable.withLock { $0 = ("unreachable", .now) }
            self.failures.log(
                "postgres connect",
                "cannot connect to the database",
                level: .error,
                metadata: ["database": "\(self.location.redacted)", "detail": "\(Self.describe(error))"],
                to: self.logger
            )
            throw Self.unreachable(error)
        }
        self.writer.withLock { $0 = connection }
        return connection
    }

    /// Runs `body` on the writer queue: in a transaction under the write lock
    /// (start-up work: migrations; a copy), or in a read-only snapshot.
    func onWriter<T: Sendable>(
        readOnly: Bool = false,
        _ body: @escaping @Sendable (PostgresSQLConnection) throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            self.writerQueue.async {
                continuation.resume(
                    with: Result {
                        try Self.transaction(
                            try self.writerSQL(),
                            readOnly: readOnly,
                            body
                        )
                    }
                )
            }
        }
    }

    /// Runs `body` in a transaction: a `REPEATABLE READ READ ONLY` snapshot,
    /// or a write under the write lock. Commits what it returns from; rolls
    /// back what it throws from.
    private static func transaction<T>(
        _ sql: PostgresSQLConnection,
        readOnly: Bool,
        _ body: (PostgresSQLConnection) throws -> T
    ) throws -> T {
        try sql.execute(readOnly ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN")
        do {
            if !readOnly { try sql.execute("SELECT pg_advisory_xact_lock(?)", [Self.writeLock]) }
            let value = try body(sql)
            try sql.execute("COMMIT")
            return value
        } catch {
            try? sql.execute("ROLLBACK")
            throw error
        }
    }

    /// Applies the migrations this database has not had, in order.
    private static func migrate(_ sql: PostgresSQLConnection) throws {
        try sql.execute("CREATE TABLE IF NOT EXISTS havenMigration (name TEXT PRIMARY KEY, appliedAt BIGINT NOT NULL)")
        let applied = Set(try sql.values(String.self, "SELECT name FROM havenMigration"))
        let known = Set(Self.migrations.map(\.name))
        if let unknown = applied.subtracting(known).sorted().first {
            throw HavenError(
                code: .dataLoss,
                message: "the database's schema is newer than this software (it has migration \(unknown))"
            )
        }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        for migration in Self.migrations where !applied.contains(migration.name) {
            for statement in Self.statements(migration.sql) { try sql.execute(statement) }
            try sql.execute("INSERT INTO havenMigration (name, appliedAt) VALUES (?, ?)", [migration.name, now])
        }
    }

    /// A migration's statements, one by one (the extended protocol takes one at a time).
    static func statements(_ script: String) -> [String] {
        script.components(separatedBy: ";\n").compactMap { chunk in
            let lines = chunk.split(separator: "\n").filter {
                !$0.trimmingCharacters(in: .whitespaces).hasPrefix("--")
            }
            let statement = lines.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
            let trimmed = statement.hasSuffix(";") ? String(statement.dropLast()) : statement
            return trimmed.isEmpty ? nil : trimmed
        }
    }

    // MARK: Change notifications across instances

    /// Listens for the commits of every instance (this one's included) and
    /// publishes them to this instance's feed subscribers. After each
    /// (re)connection it publishes the latest sequence first, so nothing
    /// committed while it was not listening is missed.
    private func listenForChanges() async {
        while !Task.isCancelled {
            do {
                let connection = try await PostgresConnection.connect(
                    on: self.eventLoopGroup.any(),
                    configuration: try self.location.connectionConfiguration(),
                    id: self.connectionIDs.wrappingAdd(1, ordering: .relaxed).oldValue,
                    logger: self.logger
                )
                do {
                    try await connection.listen(on: Self.changeChannel) { notifications in
                        self.notifier.publish(try await self.latestChangeSequence())
                        for try await notification in notifications {
                            if let latest = UInt64(notification.payload) { self.notifier.publish(latest) }
                        }
                    }
                } catch {
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
            } catch {
                if Task.isCancelled { return }
                self.failures.log(
                    "postgres listen",
                    "change listener lost its connection; reconnecting",
                    level: .warning,
                    metadata: ["detail": "\(Self.describe(error))"],
                    to: self.logger
                )
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    // MARK: Health

    /// Why the store cannot take writes now, or nil when it can: the database
    /// could not be reached (or was full) for a write in the last 30 seconds
    /// and no write has succeeded since, or it cannot be read now. Readiness
    /// (`/health/ready`) asks this: a load balancer sends calls elsewhere.
    package func unwritableReason(now: ContinuousClock.Instant = .now) async -> String? {
        if let (kind, at) = self.lastUnwritable.withLock({ $0 }), now - at < .seconds(30) {
            return "the last write failed: database \(kind)"
        }
        do {
            _ = try await self.read { try $0.latestChangeSequence() }
        } catch {
            return "the database cannot be read"
        }
        return nil
    }

    // MARK: Failures

    static func unreachable(_ error: any Error) -> HavenError {
        if let error = error as? HavenError { return error }
        var detail = Haven_V1_ErrorDetail()
        detail.retry.retryAfterMs = 1000
        return HavenError(
            code: .unavailable,
            message: "the database cannot be reached: retry shortly",
            details: [detail]
        )
    }

    /// Maps errors to ``HavenError`` for clients, never with PostgreSQL's
    /// text or a statement's arguments (the detail goes to the log).
    static func translate(_ error: any Error) -> HavenError {
        switch error {
        case let error as HavenError: return error
        case is CancellationError:
            return HavenError(code: .cancelled, message: "cancelled before the transaction committed")
        case let error as PostgresServerError:
            return Self.translate(state: error.sqlState, error)
        case let error as PSQLError:
            if error.code == .server, let state = error.serverInfo?[.sqlState] {
                return Self.translate(state: state, error)
            }
            return Self.unreachable(error)
        case is ChannelError, is IOError, is PostgresStatementError:
            return Self.unreachable(error)
        case _ where Self.isPoolError(error):
            // The read pool shut down, or cannot connect (its circuit breaker).
            return Self.unreachable(error)
        default:
            return HavenError(code: .internal, message: "internal storage error (see the server's log)")
        }
    }

    /// Maps a statement PostgreSQL refused, by its SQLSTATE.
    private static func translate(state: String, _ error: any Error) -> HavenError {
        switch state {
        case "53100":  // disk_full
            return HavenError(
                code: .resourceExhausted,
                message:
                    "the server's storage is full: nothing was written; retry only after an operator has freed space"
            )
        case "40001", "40P01", "55P03", "57014":  // serialization, deadlock, lock wait, cancelled statement
            return Self.unreachable(error)
        case "0A000":
            // A prepared statement's table changed under it (another instance
            // migrated the schema); the writer prepares its statements anew.
            return Self.unreachable(error)
        case _ where state.hasPrefix("08") || state.hasPrefix("57P") || state.hasPrefix("53"):
            return Self.unreachable(error)
        default:
            return HavenError(
                code: .internal,
                message:
                    "the server cannot use its storage: an operator must act (see the server's log); a write that failed may be retried with its idempotency key once the server is healthy"
            )
        }
    }

    /// Translates a failure for the client and logs what the operator needs
    /// (PostgreSQL's SQLSTATE and message, never arguments), at most once per
    /// kind every ten seconds.
    func failed(_ error: any Error) -> HavenError {
        let translated = Self.translate(error)
        if !(error is HavenError) {
            self.instruments.failed(kind: translated.code == .unavailable ? "unavailable" : "other")
            if translated.code == .unavailable || translated.code == .resourceExhausted {
                self.lastUnwritable.withLock {
                    $0 = (translated.code == .unavailable ? "unreachable" : "full", .now)
                }
            }
            self.failures.log(
                "storage \(translated.code)",
                "storage failure",
                level: translated.code == .unavailable ? .warning : .error,
                metadata: ["code": "\(translated.code)", "detail": "\(Self.describe(error))"],
                to: self.logger
            )
        }
        return translated
    }

    /// postgres-nio's pool reports in a type of a module it does not promise
    /// (`_ConnectionPoolModule`): recognised by name, not imported.
    static func isPoolError(_ error: any Error) -> Bool {
        String(describing: type(of: error)) == "ConnectionPoolError"
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            let state = error.serverInfo?[.sqlState] ?? "-"
            let message = error.serverInfo?[.message] ?? ""
            return "PostgreSQL \(error.code) \(state) \(message)"
        }
        if let error = error as? PostgresServerError {
            return "PostgreSQL server \(error.sqlState) \(error.message)"
        }
        if Self.isPoolError(error) { return "connection pool: \(error)" }
        return String(describing: type(of: error))
    }
}

/// The writer connection, as group commit drives it: BEGIN takes the write
/// lock all instances share; COMMIT announces the latest change sequence.
final class PostgresGroupWriter: GroupCommitConnection, @unchecked Sendable {
    // Used on the writer queue only.
    let sql: PostgresSQLConnection
    let state = GroupTransactionState()
    private var open = false
    /// The change log's last sequence as of the last COMMIT.
    private(set) var committedSequence: UInt64?

    private let effects: StatementEffects

    init(sql: PostgresSQLConnection) {
        guard let effects = sql.effects else {
            preconditionFailure("group commit needs to know what each write's statements may have changed")
        }
        self.sql = sql
        self.effects = effects
    }

    func begin() throws {
        self.state.forget()
        try self.sql.execute("BEGIN")
        self.open = true
        try self.sql.execute("SELECT pg_advisory_xact_lock(?)", [PostgresStore.writeLock])
    }

    func savepoint() throws { try self.sql.execute("SAVEPOINT haven_write") }
    func releaseSavepoint() throws { try self.sql.execute("RELEASE SAVEPOINT haven_write") }
    func rollbackToSavepoint() throws {
        self.state.forget()
        try self.sql.execute("ROLLBACK TO SAVEPOINT haven_write")
        try self.sql.execute("RELEASE SAVEPOINT haven_write")
    }

    var isInsideTransaction: Bool { self.open && !self.sql.connection.isClosed }
    var changes: Int { self.effects.count }

    func commit() throws {
        // Under the write lock the last sequence is what this commit makes
        // visible: announced (delivered at COMMIT) and read in one statement.
        let latest = UInt64(
            try self.sql.value(
                Int64.self,
                """
                WITH head AS (SELECT COALESCE(MAX(sequence), 0) AS latest FROM change),
                sent AS (SELECT pg_notify(?, latest::text) FROM head)
                SELECT latest FROM head, sent
                """,
                [PostgresStore.changeChannel]
            ) ?? 0
        )
        let tag = try self.sql.command("COMMIT")
        self.open = false
        // PostgreSQL answers COMMIT of an aborted transaction with ROLLBACK, not an error.
        guard tag == "COMMIT" else {
            throw HavenError(code: .internal, message: "the database rolled the transaction back at commit")
        }
        self.committedSequence = latest
    }

    func rollback() {
        if self.open, !self.sql.connection.isClosed { try? self.sql.execute("ROLLBACK") }
        self.open = false
    }
}
