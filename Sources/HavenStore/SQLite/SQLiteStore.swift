import Foundation
import GRDB
import HavenProtocol
import Synchronization

/// The embedded store: one SQLite file in the data directory, through GRDB.
///
/// One `DatabasePool` in WAL mode, so reads never wait for the writer.
/// `PRAGMA synchronous = FULL` on the writer: GRDB chooses NORMAL for WAL,
/// which can lose the last transactions in a power cut; Haven acknowledges a
/// write only once it is durable, so the store sets FULL back after opening
/// and refuses to start if it does not read back as FULL.
package final class SQLiteStore: RecordStore {
    private let pool: DatabasePool
    private let notifier = ChangeNotifier()

    /// Opens (creating if needed) the database at `path` and runs migrations.
    ///
    /// - Parameter path: The database file.
    /// - Throws: ``HavenError`` UNAVAILABLE when it cannot be opened or is not
    ///   durable; DATA_LOSS when its schema is newer than this software.
    package init(path: String) throws {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            self.pool = try DatabasePool(path: path, configuration: configuration)
            try self.pool.barrierWriteWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = FULL")
            }
            let mode = try self.synchronousMode()
            guard mode == 2 else {
                throw HavenError(
                    code: .unavailable,
                    message: "database is not durable: PRAGMA synchronous is \(mode), not FULL (2)"
                )
            }
            try Self.migrator.migrate(self.pool)
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
            try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1
        }
    }

    /// `PRAGMA journal_mode` of the database.
    package func journalMode() throws -> String {
        try self.pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
    }

    package func read<T: Sendable>(_ body: @escaping @Sendable (any StoreReader) throws -> T) async throws -> T {
        do {
            return try await self.pool.read { db in try body(SQLiteTransaction(db)) }
        } catch {
            throw Self.translate(error)
        }
    }

    package func write<T: Sendable>(_ body: @escaping @Sendable (any StoreWriter) throws -> T) async throws -> T {
        let (result, latest): (T, UInt64)
        do {
            (result, latest) = try await self.pool.write { db in
                let value = try body(SQLiteTransaction(db))
                return (value, try Self.latestSequence(db))
            }
        } catch {
            throw Self.translate(error)
        }
        self.notifier.publish(latest)
        return result
    }

    package func latestChangeSequence() async throws -> UInt64 {
        try await self.read { try $0.latestChangeSequence() }
    }

    package func changeNotifications() -> AsyncStream<UInt64> {
        self.notifier.subscribe()
    }

    static func latestSequence(_ db: Database) throws -> UInt64 {
        UInt64(try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(sequence), 0) FROM change") ?? 0)
    }

    /// Maps errors to ``HavenError`` without leaking statement arguments (which
    /// can hold record content) into messages.
    static func translate(_ error: any Error) -> any Error {
        switch error {
        case let error as HavenError: return error
        case is CancellationError:
            return HavenError(code: .cancelled, message: "cancelled before the transaction committed")
        case let error as DatabaseError where Self.transient.contains(error.resultCode.primaryResultCode):
            // The database is busy, out of space or unreadable: retrying later can succeed.
            return HavenError(code: .unavailable, message: "storage unavailable: \(Self.describe(error))")
        default:
            // Anything else is a fault of the server, not a state to retry through.
            return HavenError(code: .internal, message: "storage error: \(Self.describe(error))")
        }
    }

    private static let transient: [ResultCode] = [
        .SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_IOERR, .SQLITE_FULL, .SQLITE_CANTOPEN, .SQLITE_READONLY,
        .SQLITE_PROTOCOL,
    ]

    static func describe(_ error: any Error) -> String {
        if let error = error as? DatabaseError {
            // The result code and SQLite's own message; never the SQL arguments.
            return "SQLite \(error.resultCode): \(error.message ?? "no message")"
        }
        return String(describing: type(of: error))
    }
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
        do {
            return try self.pool.write { db in try body(SQLiteTransaction(db)) }
        } catch {
            throw Self.translate(error)
        }
    }
}
