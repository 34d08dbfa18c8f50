/// When the embedded store's write-ahead log is copied into the database
/// file (a *checkpoint*), and by whom: the writer itself, after its commit,
/// or the background checkpointer (``WALCheckpointer``) on a connection of its
/// own, so that the single writer — the store's bottleneck under load — does
/// not spend its time copying pages.
///
/// SQLite's own rule (`wal_autocheckpoint`) is that the connection whose
/// commit brings the log to 1,000 frames checkpoints it then. That is still
/// the rule when no background checkpointer runs (tools, tests, a server
/// shutting down). While one runs, the writer asks it instead, and keeps a
/// backstop: a log of ``WALCheckpointPolicy/backstop`` frames is checkpointed
/// by the writer whatever the background is doing, so the log stays bounded
/// even if the checkpointer stalls or fails. A checkpoint never weakens
/// durability: every frame it copies was already fsynced at its commit.
///
/// The writer's commit hook (``committed(frames:)``) and the checkpointer's
/// reports (``checkpointed(epoch:backfilled:)``) drive this state under
/// one lock; each call returns what to do.
package struct WALCheckpointState: Sendable, Equatable {
    package let policy: WALCheckpointPolicy
    /// Frames in the log after the last commit.
    package private(set) var frames = 0
    /// How many of the log's frames are known to be copied into the database.
    package private(set) var backfilled = 0
    /// Incremented whenever the log restarts from its first frame, so that a
    /// report about the log before is not taken for the new one.
    package private(set) var epoch: UInt64 = 0
    /// Whether a background checkpointer is running.
    package private(set) var backgroundRunning = false
    /// Whether the background checkpointer was asked and has not reported yet.
    package private(set) var requested = false

    /// What a commit calls for.
    package enum Decision: Sendable, Equatable {
        /// Nothing yet.
        case none
        /// Wake the background checkpointer.
        case requestBackground
        /// Checkpoint now, on the writer, before acknowledging the commit's writes.
        case checkpointInline
    }

    package init(policy: WALCheckpointPolicy) {
        self.policy = policy
    }

    /// The writer committed, leaving `frames` frames in the log (SQLite's
    /// WAL hook reports them, the committed ones included).
    package mutating func committed(frames: Int) -> Decision {
        if frames < self.frames {
            // SQLite restarts a fully copied log from its first frame.
            self.epoch &+= 1
            self.backfilled = 0
        }
        self.frames = frames
        if frames >= self.policy.backstop { return .checkpointInline }
        guard frames - self.backfilled >= self.policy.threshold else { return .none }
        guard self.backgroundRunning else { return .checkpointInline }
        guard !self.requested else { return .none }
        self.requested = true
        return .requestBackground
    }

    /// A checkpoint made on the writer (in its commit hook, so the log
    /// cannot have restarted meanwhile) copied `backfilled` of the log's frames.
    package mutating func checkpointedInline(backfilled: Int) {
        self.backfilled = max(self.backfilled, backfilled)
    }

    /// What the background checkpointer is to tag its next checkpoint with.
    package var currentEpoch: UInt64 { self.epoch }

    /// The background checkpointer finished a checkpoint it began in `epoch`,
    /// which copied `backfilled` of the log's frames (nil: it did not run,
    /// another checkpoint holding the log or the connection failing).
    package mutating func checkpointed(epoch: UInt64, backfilled: Int?) {
        self.requested = false
        // A log that restarted since the checkpoint began is not the one it copied.
        guard let backfilled, epoch == self.epoch else { return }
        self.backfilled = max(self.backfilled, backfilled)
    }

    /// The background checkpointer started (true) or stopped (false); while
    /// none runs, commits checkpoint inline as SQLite's default rule does.
    package mutating func background(running: Bool) {
        self.backgroundRunning = running
        self.requested = false
    }
}

/// The thresholds of ``WALCheckpointState``, in frames (one frame holds one
/// database page, 4 KiB).
package struct WALCheckpointPolicy: Sendable, Equatable {
    /// Frames not yet copied after which a checkpoint is due.
    package var threshold: Int
    /// Frames in the log at which the writer checkpoints inline whatever the background does.
    package var backstop: Int

    /// A checkpoint every 4,000 frames (about 16 MiB of log), with a backstop
    /// of 20,000 (about 80 MiB, which the log file then keeps).
    ///
    /// SQLite's default cadence, 1,000 frames, copied the pages every commit
    /// touches (the tails of the audit trail, the change log and the
    /// timeline, the upper levels of every index) four times as often, each
    /// time with an fsync of the database file: in alternated runs of
    /// `profile-calls write 10000 16 100`, 2,800–3,350 writes a second
    /// against 3,200–3,900 with this policy, and about 30 µs more system CPU
    /// per write (docs/BENCHMARKS.md). A reader looks a page up only among
    /// the frames not yet copied, so a longer log costs it little.
    package static let standard = WALCheckpointPolicy(threshold: 4000, backstop: 20_000)

    package init(threshold: Int, backstop: Int) {
        precondition(threshold > 0 && backstop > threshold)
        self.threshold = threshold
        self.backstop = backstop
    }
}
