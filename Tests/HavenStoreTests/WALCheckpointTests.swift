import Foundation
import GRDB
import HavenProtocol
import HavenTestSupport
import Testing

@testable import HavenStore

/// When the embedded store's write-ahead log is checkpointed, and by whom
/// (``WALCheckpointState``, tested directly), and the background
/// checkpointer at work on a real store.
@Suite("WAL checkpoints")
struct WALCheckpointTests {
    static let policy = WALCheckpointPolicy(threshold: 10, backstop: 100)

    @Test(
        "with no background checkpointer, the commit that brings the log to the threshold checkpoints it, as SQLite's own rule does"
    )
    func inlineWithoutBackground() {
        var state = WALCheckpointState(policy: Self.policy)
        #expect(state.committed(frames: 5) == .none)
        #expect(state.committed(frames: 10) == .checkpointInline)
        state.checkpointedInline(backfilled: 10)
        #expect(state.committed(frames: 15) == .none)
        #expect(state.committed(frames: 19) == .none)
        #expect(state.committed(frames: 20) == .checkpointInline)
        // A checkpoint that could copy only part (a reader's snapshot) leaves the rest counted.
        state.checkpointedInline(backfilled: 12)
        #expect(state.committed(frames: 21) == .none)
        #expect(state.committed(frames: 22) == .checkpointInline)
    }

    @Test("with one running, the writer asks it once per checkpoint, and its report starts the count again")
    func asksTheBackground() {
        var state = WALCheckpointState(policy: Self.policy)
        state.background(running: true)
        #expect(state.committed(frames: 9) == .none)
        #expect(state.committed(frames: 10) == .requestBackground)
        #expect(state.requested)
        #expect(state.committed(frames: 12) == .none)
        #expect(state.committed(frames: 14) == .none)
        state.checkpointed(epoch: state.currentEpoch, backfilled: 12)
        #expect(!state.requested)
        #expect(state.backfilled == 12)
        #expect(state.committed(frames: 21) == .none)
        #expect(state.committed(frames: 22) == .requestBackground)
    }

    @Test("the backstop checkpoints on the writer whatever the background does")
    func backstop() {
        var state = WALCheckpointState(policy: Self.policy)
        state.background(running: true)
        #expect(state.committed(frames: 10) == .requestBackground)
        #expect(state.committed(frames: 99) == .none)
        #expect(state.committed(frames: 100) == .checkpointInline)
        #expect(state.committed(frames: 140) == .checkpointInline)
        state.checkpointedInline(backfilled: 140)
        // The report of the background's checkpoint, older, does not lower what is known copied.
        state.checkpointed(epoch: state.currentEpoch, backfilled: 60)
        #expect(state.backfilled == 140)
    }

    @Test("a log that restarts is counted from its start, and a report about the log before is ignored")
    func restart() {
        var state = WALCheckpointState(policy: Self.policy)
        state.background(running: true)
        #expect(state.committed(frames: 50) == .requestBackground)
        let epoch = state.currentEpoch
        // The checkpoint copied all 50; the next write restarted the log before the report came.
        #expect(state.committed(frames: 3) == .none)
        #expect(state.currentEpoch == epoch + 1)
        state.checkpointed(epoch: epoch, backfilled: 50)
        #expect(state.backfilled == 0)
        #expect(!state.requested)
        #expect(state.committed(frames: 10) == .requestBackground)
    }

    @Test("a busy or failed background checkpoint copies nothing, and the next commit asks again")
    func failedBackground() {
        var state = WALCheckpointState(policy: Self.policy)
        state.background(running: true)
        #expect(state.committed(frames: 10) == .requestBackground)
        state.checkpointed(epoch: state.currentEpoch, backfilled: nil)
        #expect(state.backfilled == 0)
        #expect(state.committed(frames: 11) == .requestBackground)
    }

    @Test("once the background checkpointer stops, commits checkpoint inline again")
    func backgroundStops() {
        var state = WALCheckpointState(policy: Self.policy)
        state.background(running: true)
        #expect(state.committed(frames: 10) == .requestBackground)
        state.background(running: false)
        #expect(!state.requested)
        #expect(state.committed(frames: 11) == .checkpointInline)
    }

    // MARK: - On a store

    static let storePolicy = WALCheckpointPolicy(threshold: 16, backstop: 400)
    /// A WAL frame: a 24-byte header and a 4 KiB page.
    static let frameBytes = 4096 + 24

    static func walBytes(_ directory: TemporaryDirectory) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: directory.path("haven.sqlite-wal"))
        return (attributes[.size] as? Int) ?? 0
    }

    /// `count` offices, written 16 at a time.
    static func writeOffices(_ store: SQLiteStore, count: Int, from first: Int = 0) async throws {
        for batch in stride(from: first, to: first + count, by: 16) {
            try await withThrowingTaskGroup { group in
                for number in batch..<min(first + count, batch + 16) {
                    group.addTask {
                        try await store.audited { tx in
                            try tx.insert(SQLiteStoreTests.office(String(format: "O%04d", number)))
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    static func offices(_ store: SQLiteStore) async throws -> Int {
        try await store.read { try $0.count(Haven_V1_Office.self, RecordQuery(order: .idAscending)) }
    }

    @Test("without the background checkpointer, the writer checkpoints at the threshold and the log stays small")
    func writerCheckpoints() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteStore(
            path: directory.path("haven.sqlite"),
            keys: freshStoreKeys(),
            checkpoints: Self.storePolicy
        )
        try await Self.writeOffices(store, count: 600)
        #expect(store.checkpointer.checkpoints.writer > 0)
        #expect(store.checkpointer.checkpoints.background == 0)
        // The log restarts after each full checkpoint: it never holds much more
        // than the threshold (600 writes leave about 400 frames uncheckpointed).
        #expect(try Self.walBytes(directory) <= 32 + (16 + 64) * Self.frameBytes)
        #expect(try await Self.offices(store) == 600)
    }

    @Test("with it running, it checkpoints for the writer, the log stays under the backstop, and every commit is kept")
    func backgroundCheckpoints() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        do {
            let store = try SQLiteStore(
                path: directory.path("haven.sqlite"),
                keys: freshStoreKeys(),
                checkpoints: Self.storePolicy
            )
            let checkpointer = store.checkpointer
            try await withThrowingTaskGroup { group in
                group.addTask { try await checkpointer.run() }
                #expect(try await eventually { checkpointer.isRunning })
                try await Self.writeOffices(store, count: 1500)
                #expect(try await eventually { checkpointer.checkpoints.background > 0 })
                group.cancelAll()
            }
            #expect(!checkpointer.isRunning)
            // The backstop, plus what one batch of writes adds past it (1,500
            // writes leave about 1,000 frames uncheckpointed).
            #expect(try Self.walBytes(directory) <= 32 + (400 + 64) * Self.frameBytes)
            #expect(try await Self.offices(store) == 1500)
            // Stopped, it leaves the checkpoints to the writer again.
            let before = checkpointer.checkpoints
            try await Self.writeOffices(store, count: 200, from: 1500)
            #expect(checkpointer.checkpoints.writer > before.writer)
            #expect(checkpointer.checkpoints.background == before.background)
            // And it can run again (a server restarted on the same store).
            try await withThrowingTaskGroup { group in
                group.addTask { try await checkpointer.run() }
                #expect(try await eventually { checkpointer.isRunning })
                try await Self.writeOffices(store, count: 200, from: 1700)
                #expect(try await eventually { checkpointer.checkpoints.background > before.background })
                group.cancelAll()
            }
        }
        let reopened = try SQLiteStore(path: directory.path("haven.sqlite"), keys: freshStoreKeys())
        #expect(try await Self.offices(reopened) == 1900)
        let integrity = try await reopened.read { tx in
            try String.fetchOne((tx as! SQLTransaction).sqliteDatabase!, sql: "PRAGMA integrity_check")
        }
        #expect(integrity == "ok")
    }
}
