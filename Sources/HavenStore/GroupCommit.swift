import Crypto
import Foundation
import HavenProtocol
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the writes of one group transaction know of what the writes before
/// them in it wrote or read, so that they need not read it back: the audit
/// trail's head (each write's entry chains onto the previous one's), the
/// record keys unwrapped (writes to one case in a burst seal under one key),
/// and the accounts read (each write asks the access policy whether its
/// caller's account is still enabled; a write that saves an account drops it
/// here, and the next read reads it again).
/// The connection that group commit drives is made anew for each group, and
/// forgets all of it whenever a transaction begins (after a failed one,
/// within the group) or a write's savepoint rolls back (a write that failed
/// having changed nothing leaves only what it read); under the write lock
/// (SQLite's single writer, PostgreSQL's advisory lock) nothing else writes
/// meanwhile, and an erasure in the group drops its record's key here too.
/// So no key outlives the group, at most ``GroupCommit/maxGroupSize`` writes.
final class GroupTransactionState {
    var auditHead: (sequence: Int64, hash: Data)?
    /// Record keys by `kind/id`, as stored in this group's transaction.
    var recordKeys: [String: SymmetricKey] = [:]
    /// Accounts by id as read in this group's transaction (nil: none has that id).
    var accounts: [String: Account?] = [:]

    func forget() {
        self.auditHead = nil
        self.recordKeys.removeAll()
        self.accounts.removeAll()
    }
}

/// Group commit: writes that arrive while the writer is busy share one
/// transaction, and so one fsync, and each is acknowledged only after the
/// commit that makes it durable.
///
/// The writes of a group run in arrival order in the shared transaction, so
/// each sees everything the writes before it wrote (the transactions stay
/// serialisable, as if run one after another). A write whose body throws
/// fails alone; the others in the group are unaffected:
///
/// - A write that changed nothing before it threw (the usual failure: a
///   stale version, a record not found, a refused permission, checked before
///   anything is written) leaves the transaction as it found it, and the
///   group goes on. The connection tells (``GroupCommitConnection/changes``).
/// - A write that threw after it changed something cannot be undone alone
///   without a savepoint. The transaction is rolled back, the writes that
///   had succeeded in it run again in a new one, and the rest of the group
///   then runs as the writes after a failure do: each in a savepoint of its
///   own, rolled back to it alone if it throws. A body reads and writes only
///   through its transaction, so running it again is running it as if the
///   first run had never happened; nothing of the first run was acknowledged.
///
/// Savepoints around every write would cost each write two statements and
/// a copy of every page it changes (about 7 % of writes per second on
/// SQLite at 256 in flight, two round trips on PostgreSQL); a write that
/// fails after changing something is rare.
///
/// A write whose caller gave up on it (its task was cancelled: the client
/// cancelled the call, or its deadline passed) before the writer took it up
/// is not run: it fails CANCELLED and changes nothing. One the writer has
/// started is not bound to the cancel any more; it commits with its group,
/// since undoing it alone would take the group's transaction down with it.
///
/// When the database itself aborts the transaction (SQLite rolls the whole
/// transaction back on some I/O and full-disk errors), the writes of the
/// group so far fail with that error — none of them was acknowledged — and
/// the remaining writes start a new transaction. When the commit fails,
/// every write of the group fails. No write is acknowledged before its
/// commit returned.
///
/// The store decides *when* a group runs (``GroupCommitQueue``); this type
/// decides what happens to each write of a group, and is tested directly
/// against a scripted connection.
package enum GroupCommit {
    /// How many writes one transaction takes at most: a bound on how long one
    /// transaction holds the writer and on what one failed commit takes down.
    package static let maxGroupSize = 128

    /// What a write cancelled before the writer took it up fails with.
    package static let cancelled = HavenError(
        code: .cancelled,
        message: "the call was cancelled before its write began; nothing was written"
    )

    /// Runs `group` in as few transactions as its failures allow.
    ///
    /// - Returns: What to do once the commits are published: acknowledge each
    ///   write that committed, in order. Writes that failed have already been
    ///   told (through their `fail`).
    package static func run<Connection: GroupCommitConnection>(
        _ group: [PendingWrite<Connection>],
        on connection: Connection
    ) -> GroupCommitOutcome {
        var outcome = GroupCommitOutcome()
        // Writes that succeeded inside the open transaction, awaiting its commit.
        var uncommitted: [(write: PendingWrite<Connection>, acknowledge: @Sendable () -> Void)] = []
        var open = false
        // Each write in a savepoint of its own: after one failed having changed something.
        var guarded = false
        // The writes still to run, the next last.
        var pending = Array(group.reversed())

        func abandon(_ error: any Error) {
            connection.rollback()
            for pending in uncommitted { pending.write.fail(error) }
            outcome.failed += uncommitted.count
            uncommitted.removeAll()
            open = false
        }

        let clock = ContinuousClock()
        let started = clock.now
        let startedOnCPU = ThreadCPUTime.now()
        while let write = pending.popLast() {
            if write.cancellation?.isCancelled == true {
                write.fail(GroupCommit.cancelled)
                outcome.failed += 1
                outcome.cancelled += 1
                continue
            }
            if !open {
                do {
                    try connection.begin()
                    open = true
                } catch {
                    connection.rollback()
                    write.fail(error)
                    outcome.failed += 1
                    continue
                }
            }
            if guarded {
                do {
                    try connection.savepoint()
                    let acknowledge = try write.run(connection)
                    try connection.releaseSavepoint()
                    uncommitted.append((write, acknowledge))
                } catch {
                    // Roll this write back alone when the transaction survived its failure.
                    var survived = connection.isInsideTransaction
                    if survived {
                        do {
                            try connection.rollbackToSavepoint()
                        } catch {
                            survived = false
                        }
                    }
                    write.fail(error)
                    outcome.failed += 1
                    if !survived { abandon(error) }
                }
                continue
            }
            let before = connection.changes
            do {
                uncommitted.append((write, try write.run(connection)))
            } catch {
                write.fail(error)
                outcome.failed += 1
                if !connection.isInsideTransaction {
                    abandon(error)
                } else if connection.changes != before {
                    // Part of it is in the transaction: start again without it.
                    connection.rollback()
                    open = false
                    pending += uncommitted.reversed().map(\.write)
                    outcome.repeated += uncommitted.count
                    uncommitted.removeAll()
                    guarded = true
                }
            }
        }
        outcome.running = clock.now - started
        let ranOnCPU = ThreadCPUTime.now()
        outcome.runningOnCPU = ranOnCPU - startedOnCPU
        if open {
            do {
                try connection.commit()
                outcome.transactions += 1
                outcome.committed += uncommitted.count
                outcome.acknowledgements = uncommitted.map(\.acknowledge)
            } catch {
                abandon(error)
            }
        }
        outcome.committing = clock.now - started - outcome.running
        outcome.committingOnCPU = ThreadCPUTime.now() - ranOnCPU
        return outcome
    }
}

/// What ``GroupCommit/run(_:on:)`` did with a group.
package struct GroupCommitOutcome: Sendable {
    /// Transactions committed (0 or 1 unless the database aborted one).
    package var transactions = 0
    /// Writes committed: durable, to be acknowledged.
    package var committed = 0
    /// Writes that failed (each told through its `fail`).
    package var failed = 0
    /// Writes run a second time, after a write that failed having changed
    /// something took their transaction down with it.
    package var repeated = 0
    /// Writes not run because their caller had been cancelled (counted in ``failed`` too).
    package var cancelled = 0
    /// How long the writer spent running the writes (with their
    /// transactions' beginnings, savepoints and rollbacks), and then
    /// committing (the last commit, its fsync included): together, the time
    /// the group held the writer.
    package var running: Duration = .zero
    package var committing: Duration = .zero
    /// How much of each the writer's thread spent on a CPU; the rest it
    /// waited: for the disk (the fsync), the database's server, or a core.
    package var runningOnCPU: Duration = .zero
    package var committingOnCPU: Duration = .zero
    /// One per committed write, in arrival order: acknowledges it.
    package var acknowledgements: [@Sendable () -> Void] = []

    package init() {}
}

/// One write waiting for the writer.
package struct PendingWrite<Connection>: Sendable {
    /// Runs the write's body in the group's transaction; returns how to
    /// acknowledge it once it is durable (resuming its caller with the body's
    /// result). Run a second time when a later write of its transaction
    /// failed having changed something: it then reads what it read the first
    /// time, and only the second run's result is acknowledged.
    package let run: @Sendable (Connection) throws -> @Sendable () -> Void
    /// Tells the caller its write failed and nothing of it was kept.
    package let fail: @Sendable (any Error) -> Void
    /// Set when the caller gives up on the write; checked before it runs.
    package let cancellation: WriteCancellation?

    package init(
        run: @escaping @Sendable (Connection) throws -> @Sendable () -> Void,
        fail: @escaping @Sendable (any Error) -> Void,
        cancellation: WriteCancellation? = nil
    ) {
        self.run = run
        self.fail = fail
        self.cancellation = cancellation
    }
}

/// Whether the caller of a pending write has given up on it: set from its
/// task's cancellation handler, read by the writer before it runs the write.
package final class WriteCancellation: Sendable {
    private let cancelled = Atomic<Bool>(false)

    package init() {}

    /// The caller gave up.
    package func cancel() { self.cancelled.store(true, ordering: .releasing) }

    /// Whether the caller gave up.
    package var isCancelled: Bool { self.cancelled.load(ordering: .acquiring) }

    /// Runs `operation` (which submits a write carrying this flag and waits
    /// for its outcome) so that the calling task's cancellation sets it.
    package func bound<T>(to operation: () async throws -> T) async throws -> T {
        try await withTaskCancellationHandler(operation: operation) { self.cancel() }
    }
}

/// What group commit needs of a database connection.
package protocol GroupCommitConnection {
    /// Begins a write transaction (taking the database's write lock).
    func begin() throws
    /// Opens a savepoint for one write.
    func savepoint() throws
    /// Keeps what the write did since its savepoint.
    func releaseSavepoint() throws
    /// Undoes what the write did since its savepoint, and closes it.
    func rollbackToSavepoint() throws
    /// Whether a transaction is open (false once the database aborted it).
    var isInsideTransaction: Bool { get }
    /// A count that grows with anything a statement may have left in the
    /// open transaction: a row inserted, updated or deleted, or (where a
    /// failed statement spoils the transaction, as on PostgreSQL) a failure.
    /// Unchanged across a write, the transaction holds nothing of it.
    var changes: Int { get }
    /// Commits: durable when it returns.
    func commit() throws
    /// Rolls back whatever is open (nothing when nothing is).
    func rollback()
}

/// The writes waiting for the writer, first come first served, and whether
/// the writer has been asked to take them.
///
/// A caller enqueues its write; ``enqueue(_:)`` says whether it must then ask
/// the writer (a serial queue) to run the queue: only when no request is
/// outstanding, so a busy writer is asked once for all the writes that
/// arrive while it works, not once for each. The request takes up to
/// ``GroupCommit/maxGroupSize`` waiting writes as one group; if more wait,
/// ``takeGroup()`` says so and the writer asks itself again, so the request
/// stays outstanding. Once a request has taken everything, the next write
/// asks anew. Every write is thus taken by a request made at or after its
/// enqueueing, which the writer runs after it.
package struct GroupCommitQueue<Write> {
    private var waiting: [Write] = []
    private var head = 0
    private let maxGroupSize: Int
    /// A request to run the queue is outstanding (asked for and not yet
    /// found the queue empty).
    private var requested = false

    package init(maxGroupSize: Int = GroupCommit.maxGroupSize) {
        precondition(maxGroupSize > 0)
        self.maxGroupSize = maxGroupSize
    }

    /// Writes enqueued and not yet taken.
    package var count: Int { self.waiting.count - self.head }

    /// Adds a write behind those waiting. Returns whether the caller must ask
    /// the writer to run the queue (``takeGroup()``): true when no request
    /// is outstanding, which this one then is.
    package mutating func enqueue(_ write: Write) -> Bool {
        self.waiting.append(write)
        guard !self.requested else { return false }
        self.requested = true
        return true
    }

    /// For the writer's request: the next group, the oldest waiting writes,
    /// at most the group size, and whether writes remain after it, for which
    /// the writer must ask itself again (the request stays outstanding).
    /// When none remain, the request is over: the next write asks anew.
    package mutating func takeGroup() -> (group: [Write], more: Bool) {
        let end = min(self.waiting.count, self.head + self.maxGroupSize)
        let group = Array(self.waiting[self.head..<end])
        self.head = end
        if self.head == self.waiting.count {
            self.waiting.removeAll(keepingCapacity: true)
            self.head = 0
            self.requested = false
            return (group, false)
        }
        if self.head >= 1024 {
            self.waiting.removeFirst(self.head)
            self.head = 0
        }
        return (group, true)
    }
}

/// A store whose writes go through ``GroupCommit``: it submits each write
/// with an optional ``WriteCancellation``, and gets ``RecordStore/write(_:)``
/// (never dropped) and ``RecordStore/writeUnlessCancelled(_:)`` (dropped
/// when its caller is cancelled before the writer takes it up) from it.
package protocol GroupCommittedStore: RecordStore {
    /// Submits `body` to the next group commit; returns once the commit
    /// covering it returned. When `cancellation` is set before the writer
    /// takes the write up, the write fails CANCELLED having written nothing.
    func submit<T: Sendable>(
        _ body: @escaping @Sendable (any StoreWriter) throws -> T,
        cancellation: WriteCancellation?
    ) async throws -> T

    /// Writes submitted and not yet taken into a group (for tests that line
    /// writes up behind a busy writer).
    var waitingWrites: Int { get }
}

extension GroupCommittedStore {
    @discardableResult
    package func write<T: Sendable>(_ body: @escaping @Sendable (any StoreWriter) throws -> T) async throws -> T {
        try await self.submit(body, cancellation: nil)
    }

    @discardableResult
    package func writeUnlessCancelled<T: Sendable>(
        _ body: @escaping @Sendable (any StoreWriter) throws -> T
    ) async throws -> T {
        let cancellation = WriteCancellation()
        return try await cancellation.bound { try await self.submit(body, cancellation: cancellation) }
    }
}

/// The CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`):
/// the writer's own work, told apart from its waits.
package enum ThreadCPUTime {
    package static func now() -> Duration {
        var time = timespec()
        guard clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time) == 0 else { return .zero }
        return .seconds(Int64(time.tv_sec)) + .nanoseconds(Int64(time.tv_nsec))
    }
}
