import Foundation
import GRDB
import HavenProtocol
import HavenTestSupport
import SwiftProtobuf
import Testing

@testable import HavenStore

/// What only the SQLite store has (its file, its pragmas); the storage
/// protocol's contract is tested against every store by the conformance
/// suite (`StoreConformanceTests`, in HavenServerTests).
@Suite("SQLiteStore")
struct SQLiteStoreTests {
    static func office(_ code: String, createdAt: Int64 = 1) -> Haven_V1_Office {
        var office = Haven_V1_Office()
        office.code = code
        office.name = "\(code) field office"
        office.status = .active
        office.version = 1
        office.createdAtUnixMs = createdAt
        office.updatedAtUnixMs = createdAt
        return office
    }

    func withStore(_ body: (SQLiteStore, TemporaryDirectory) async throws -> Void) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try await body(try SQLiteStore(path: directory.path("haven.sqlite"), keys: freshStoreKeys()), directory)
    }

    @Test(
        "opens in WAL mode with PRAGMA synchronous = FULL and a 16 MiB page cache on the writer, and secure_delete on every connection"
    )
    func durability() async throws {
        try await self.withStore { store, _ in
            let synchronous = try store.synchronousMode()
            let journal = try store.journalMode()
            #expect(synchronous == 2)
            #expect(journal == "wal")
            let readerSecureDelete = try await store.read { tx in
                try Int.fetchOne((tx as! SQLTransaction).sqliteDatabase!, sql: "PRAGMA secure_delete")
            }
            let writerSecureDelete = try await store.write { tx in
                try Int.fetchOne((tx as! SQLTransaction).sqliteDatabase!, sql: "PRAGMA secure_delete")
            }
            #expect(readerSecureDelete == 1)
            #expect(writerSecureDelete == 1)
            let writerCache = try await store.write { tx in
                try Int.fetchOne((tx as! SQLTransaction).sqliteDatabase!, sql: "PRAGMA cache_size")
            }
            #expect(writerCache == -SQLiteStore.writerCacheKiB)
        }
    }

    @Test("keeps every committed write across a reopen")
    func reopen() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        do {
            let store = try SQLiteStore(path: directory.path("haven.sqlite"), keys: freshStoreKeys())
            try await store.audited { tx in
                try tx.insert(Self.office("KOL"))
                try tx.recordIdempotency(
                    IdempotencyRecord(
                        principalID: "u1",
                        key: "k1",
                        method: "m",
                        requestDigest: [9],
                        resultID: "KOL",
                        createdAtUnixMs: 5
                    )
                )
                try tx.saveAccount(
                    Account(
                        id: "u1",
                        displayName: "Admin",
                        role: .admin,
                        officeCodes: ["KOL", "MUM"],
                        createdAtUnixMs: 1
                    )
                )
            }
        }
        let store = try SQLiteStore(path: directory.path("haven.sqlite"), keys: freshStoreKeys())
        let value10 = try await store.read { try $0.load(Haven_V1_Office.self, id: "KOL") }
        #expect(value10 != nil)
        let idempotency = try await store.read { try $0.idempotencyRecord(principalID: "u1", key: "k1") }
        #expect(idempotency?.resultID == "KOL")
        #expect(idempotency?.requestDigest == [9])
        let account = try await store.read { try $0.account(id: "u1") }
        #expect(account?.officeCodes == ["KOL", "MUM"])
        #expect(account?.role == .admin)
        #expect(try await store.read { try $0.auditSize() } == 1)
    }
}

@Suite("Storage failures as clients see them")
struct StorageFailureCodeTests {
    static func translated(_ code: ResultCode) -> HavenError {
        SQLiteStore.translate(
            DatabaseError(resultCode: code, message: "secret-ish detail", sql: "INSERT INTO record VALUES (?)")
        )
    }

    @Test(
        "busy: UNAVAILABLE with RetryInfo; full: RESOURCE_EXHAUSTED without; read-only, I/O, corrupt: INTERNAL; never SQLite's text"
    )
    func codes() {
        let busy = Self.translated(.SQLITE_BUSY)
        #expect(busy.code == .unavailable && busy.retryAfterMs == 500)
        let full = Self.translated(.SQLITE_FULL)
        #expect(full.code == .resourceExhausted && full.retryAfterMs == nil)
        for code in [ResultCode.SQLITE_READONLY, .SQLITE_IOERR, .SQLITE_CANTOPEN, .SQLITE_CORRUPT, .SQLITE_MISUSE] {
            #expect(Self.translated(code).code == .internal, "\(code)")
        }
        for error in [busy, full, Self.translated(.SQLITE_READONLY)] {
            #expect(
                !error.message.contains("secret-ish") && !error.message.contains("INSERT")
                    && !error.message.contains("SQLite")
            )
        }
        #expect(SQLiteStore.kind(of: .SQLITE_IOERR_FSYNC) == (log: "I/O error", label: "io_error"))
    }
}
