import Foundation
import GRDB
import GRDBSQLite
import Logging
import ServiceLifecycle
import Synchronization

/// Copies the embedded store's write-ahead log into its database file in
/// the background, on a connection of its own, so that the single writer
/// does not: a `Service` of havend's group (and of the embedded server's).
///
/// The writer's connection reports every commit to it through SQLite's WAL
/// hook, which replaces SQLite's own autocheckpoint; ``WALCheckpointState``
/// decides whether the commit wakes this checkpointer or checkpoints inline
/// (no checkpointer running, or the log at its backstop). Checkpoints are
/// `PASSIVE`: they copy what no reader still needs and never wait for, or
/// block, the writer or the readers. The connection checkpoints with
/// `synchronous = FULL`, so the database file is fsynced before the log can
/// be reused; every frame it copies was already durable at its commit.
package final class WALCheckpointer: Service, Sendable {
    private let state: Mutex<WALCheckpointState>
    /// How the writer wakes the running ``run()`` (nil while none runs).
    private let wake = Mutex<AsyncStream<Void>.Continuation?>(nil)
    private let path: String
    private let logger: Logger
    private let instruments: StoreInstruments
    private let failures = RateLimitedLog(interval: .seconds(60))
    private let made = Mutex<(writer: Int, background: Int)>((0, 0))

    init(path: String, policy: WALCheckpointPolicy, logger: Logger, instruments: StoreInstruments) {
        self.state = Mutex(WALCheckpointState(policy: policy))
        self.path = path
        self.logger = logger
        self.instruments = instruments
    }

    /// Checkpoints made so far: by the writer in its commits, and by this
    /// checkpointer (for tests and the store's metrics).
    package var checkpoints: (writer: Int, background: Int) { self.made.withLock { $0 } }

    /// Whether ``run()`` is checkpointing for the writer now.
    package var isRunning: Bool { self.state.withLock { $0.backgroundRunning } }

    /// Watches the writer's commits. The writer's connection must not
    /// outlive this checkpointer: the store owns both, and nothing but the
    /// store commits on its writer.
    func watch(_ writer: Database) {
        sqlite3_wal_hook(writer.sqliteConnection, walHook, Unmanaged.passUnretained(self).toOpaque())
    }

    /// On the writer, in its commit: what the commit calls for, done.
    fileprivate func committed(on connection: OpaquePointer?, database: UnsafePointer<CChar>?, frames: Int) {
        switch self.state.withLock({ $0.committed(frames: frames) }) {
        case .none:
            return
        case .requestBackground:
            // The state asks only while a run() is checkpointing; one that
            // stops meanwhile finds its request dropped, and commits then
            // checkpoint inline.
            _ = self.wake.withLock { $0?.yield() }
        case .checkpointInline:
            var log: Int32 = -1
            var copied: Int32 = -1
            // As SQLite's own autocheckpoint does; busy (the background holds the log) is not an error.
            guard
                sqlite3_wal_checkpoint_v2(connection, database, SQLITE_CHECKPOINT_PASSIVE, &log, &copied) == SQLITE_OK
            else { return }
            self.state.withLock { $0.checkpointedInline(backfilled: Int(copied)) }
            self.made.withLock { $0.writer += 1 }
            self.instruments.checkpointed(by: "writer")
        }
    }

    /// Checkpoints whenever the writer asks, until graceful shutdown; then
    /// the writer checkpoints its own commits again. When no connection of
    /// its own can be opened it says so and leaves the checkpoints to the
    /// writer, as without it.
    package func run() async throws {
        var configuration = Configuration()
        configuration.label = "haven.checkpointer"
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        let connection: DatabaseQueue
        do {
            connection = try DatabaseQueue(path: self.path, configuration: configuration)
        } catch {
            self.logger.error(
                "cannot open a connection for background checkpoints: the writer checkpoints the log itself",
                metadata: ["detail": "\(SQLiteStore.describe(error))"]
            )
            try? await gracefulShutdown()
            return
        }
        // Each run has requests of its own, so that a store's checkpointer
        // can run again after it stopped.
        let (requests, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        self.wake.withLock { $0 = wake }
        self.state.withLock { $0.background(running: true) }
        defer {
            self.state.withLock { $0.background(running: false) }
            self.wake.withLock { $0 = nil }
            wake.finish()
        }
        for await _ in requests.cancelOnGracefulShutdown() {
            let epoch = self.state.withLock { $0.currentEpoch }
            var copied: Int?
            do {
                copied = try await connection.writeWithoutTransaction { db in
                    try db.checkpoint(.passive).checkpointedFrameCount
                }
                self.made.withLock { $0.background += 1 }
                self.instruments.checkpointed(by: "background")
            } catch let error as DatabaseError where error.resultCode.primaryResultCode == .SQLITE_BUSY {
                // The writer's backstop checkpoint holds the log: the next commit asks again.
            } catch is CancellationError {
                break
            } catch {
                self.failures.log(
                    "checkpoint",
                    "a background checkpoint failed: the writer checkpoints at the backstop",
                    level: .warning,
                    metadata: ["detail": "\(SQLiteStore.describe(error))"],
                    to: self.logger
                )
            }
            self.state.withLock { $0.checkpointed(epoch: epoch, backfilled: copied) }
        }
    }
}

/// SQLite's WAL hook: called on the writer after each commit with the frames in the log.
private let walHook: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, Int32) -> Int32 =
    { context, connection, database, frames in
        guard let context else { return SQLITE_OK }
        Unmanaged<WALCheckpointer>.fromOpaque(context).takeUnretainedValue()
            .committed(on: connection, database: database, frames: Int(frames))
        return SQLITE_OK
    }
