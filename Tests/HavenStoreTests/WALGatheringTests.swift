import CHavenSQLite
import Foundation
import GRDB
import GRDBSQLite
import HavenProtocol
import HavenTestSupport
import Testing

@testable import HavenStore

/// The writer's write-ahead log gathered (`wal_coalescing.c`): a commit's
/// pages reach the file in one write at its sync, and every commit is in
/// the file, for every other connection, before it returns.
@Suite("WAL gathering")
struct WALGatheringTests {
    /// A connection of the test's own, in WAL mode, at `synchronous`.
    static func connection(_ path: String, synchronous: String, cachePages: Int = 2000) throws -> DatabaseQueue {
        SQLiteStore.configureSQLite()
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
            try db.execute(sql: "PRAGMA cache_size = \(cachePages)")
            // No checkpoint after a commit (it reads the log back, which
            // would write what waits whatever the commit did).
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")
        }
        return try DatabaseQueue(path: path, configuration: configuration)
    }

    static func rows(_ path: String) throws -> (count: Int, integrity: String) {
        // A connection of its own, not gathered: it reads the file.
        let reader = try DatabaseQueue(path: path)
        return try reader.read { db in
            (
                try Int.fetchOne(db, sql: "SELECT count(*) FROM item") ?? -1,
                try String.fetchOne(db, sql: "PRAGMA integrity_check") ?? ""
            )
        }
    }

    static func records(_ path: String) throws -> Int {
        try DatabaseQueue(path: path).read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM record") ?? -1 }
    }

    @Test("a store's writer gathers its log, and every group it commits is in the file for other connections")
    func storeGathers() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("haven.sqlite")
        let store = try SQLiteStore(path: path, keys: freshStoreKeys())
        let before = try #require(store.logWrites())
        let initial = try Self.records(path)
        for batch in 0..<8 {
            try await WALCheckpointTests.writeOffices(store, count: 16, from: batch * 16)
            // Read through a connection of its own (not the pool's), from the file.
            #expect(try Self.records(path) == initial + (batch + 1) * 16)
        }
        let after = try #require(store.logWrites())
        let (appends, writes) = (after.appends - before.appends, after.writes - before.writes)
        // At least one frame per group, two writes of SQLite's a frame; one
        // write of the file a group (more only past 128 KiB or at a restart).
        #expect(appends >= 16)
        #expect(writes >= 1)
        #expect(writes * 4 <= appends)
    }

    @Test(
        "a group whose gathered pages cannot be written fails RESOURCE_EXHAUSTED, leaves nothing for readers, and the next commits"
    )
    func failedWrite() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("haven.sqlite")
        let store = try SQLiteStore(path: path, keys: freshStoreKeys())
        try await WALCheckpointTests.writeOffices(store, count: 1)
        let before = try Self.records(path)
        try await store.databasePool.writeWithoutTransaction { db in
            // A full disk when the commit's sync writes what waits.
            #expect(haven_sqlite_wal_fail_next_write(db.sqliteConnection, SQLITE_FULL) == SQLITE_OK)
        }
        let full = await #expect(throws: HavenError.self) {
            try await store.audited { tx in try tx.insert(SQLiteStoreTests.office("O0001")) }
        }
        #expect(full?.code == .resourceExhausted)
        // Nothing of it, for another connection or the store's own.
        #expect(try Self.records(path) == before)
        #expect(try await WALCheckpointTests.offices(store) == 1)
        // The writer goes on: the same write commits now, and the file is whole.
        try await store.audited { tx in try tx.insert(SQLiteStoreTests.office("O0001")) }
        #expect(try await WALCheckpointTests.offices(store) == 2)
        #expect(try Self.records(path) == before + 1)
        let integrity = try await DatabaseQueue(path: path).read { db in
            try String.fetchOne(db, sql: "PRAGMA integrity_check")
        }
        #expect(integrity == "ok")
    }

    @Test("only a connection that commits with FULL, in WAL mode, can have its log gathered")
    func asksForFull() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let normal = try Self.connection(directory.path("normal.sqlite"), synchronous: "NORMAL")
        try normal.inDatabase { db in
            try db.execute(sql: "CREATE TABLE item (value BLOB)")
            #expect(haven_sqlite_gather_wal(db.sqliteConnection) == SQLITE_MISUSE)
        }
        let full = try Self.connection(directory.path("full.sqlite"), synchronous: "FULL")
        try full.inDatabase { db in
            try db.execute(sql: "CREATE TABLE item (value BLOB)")
            #expect(haven_sqlite_gather_wal(db.sqliteConnection) == SQLITE_OK)
        }
        let journal = try DatabaseQueue(path: directory.path("journal.sqlite"))
        try journal.inDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "CREATE TABLE item (value BLOB)")
            // A rollback journal is not a log.
            #expect(haven_sqlite_gather_wal(db.sqliteConnection) == SQLITE_NOTFOUND)
        }
    }

    @Test(
        "a transaction larger than the buffer and the page cache, rolled back, then one committed, leave the database whole"
    )
    func largeAndRolledBack() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("large.sqlite")
        // 50 pages of cache: a transaction of 6 MiB spills frames to the log before its commit.
        let queue = try Self.connection(path, synchronous: "FULL", cachePages: 50)
        try queue.inDatabase { db in
            try db.execute(sql: "CREATE TABLE item (id INTEGER PRIMARY KEY, value BLOB)")
            #expect(haven_sqlite_gather_wal(db.sqliteConnection) == SQLITE_OK)
        }
        let insert = """
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)
            INSERT INTO item (value) SELECT randomblob(4000) FROM n
            """
        try? queue.inTransaction { db in
            try db.execute(sql: insert)
            return .rollback
        }
        #expect(try Self.rows(path) == (0, "ok"))
        try queue.inTransaction { db in
            try db.execute(sql: insert)
            return .commit
        }
        queue.inDatabase { db in
            #expect(haven_sqlite_wal_waiting(db.sqliteConnection) == 0)
            var appends: Int64 = 0
            var writes: Int64 = 0
            #expect(haven_sqlite_wal_counts(db.sqliteConnection, &appends, &writes) == SQLITE_OK)
            // About 3,000 frames, 6,000 writes of SQLite's. The pages the
            // small cache reads back from the log have what waits written
            // first, so the file's writes are many more than a commit's
            // few of 128 KiB.
            #expect(appends >= 6000)
            #expect(writes * 4 <= appends)
        }
        #expect(try Self.rows(path) == (1500, "ok"))
        // And again, after the log restarted.
        try queue.inDatabase { db in _ = try Row.fetchAll(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        try queue.inTransaction { db in
            try db.execute(sql: "DELETE FROM item WHERE id % 2 = 0")
            return .commit
        }
        #expect(try Self.rows(path) == (750, "ok"))
    }
}
