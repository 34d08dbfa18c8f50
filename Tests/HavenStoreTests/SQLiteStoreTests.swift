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

    @Test(
        "an appended event's row names its audit entry, which needs no index row, and entries indexed as earlier releases did are found; its change entry keeps no box"
    )
    func auditIndexOfEvents() async throws {
        try await self.withStore { store, _ in
            var record = Haven_V1_Case()
            record.id = "case_1"
            record.reference = "KOL-2026-0001"
            record.officeCode = "KOL"
            record.status = .intake
            record.version = 1
            try await store.audited { [record] tx in try tx.insert(record) }
            for index in 1...3 {
                var event = Haven_V1_CaseEvent()
                event.id = "evt_\(index)"
                event.occurredOn = .with {
                    $0.year = 2026
                    $0.month = 3
                    $0.day = Int32(index)
                }
                event.note.text = "Fictional note \(index)"
                record.eventCount += 1
                event.sequence = record.eventCount
                record.events = [event]
                record.version += 1
                try await store.audited { [record] tx in
                    try tx.update(record, expectedVersion: record.version - 1)
                    var change = Haven_V1_ChangeEvent()
                    change.caseRecord = record
                    try tx.appendChange(NewChange(event: change, officeCode: "KOL"))
                }
            }
            func indexRows() async throws -> [String] {
                try await store.read { tx in
                    try Row.fetchAll(
                        (tx as! SQLTransaction).sqliteDatabase!,
                        sql: "SELECT kind, id, sequence FROM auditResource ORDER BY sequence, kind, id"
                    ).map { "\($0["kind"] as String) \($0["id"] as String) \($0["sequence"] as Int64)" }
                }
            }
            let entries = try await store.read { try $0.auditEntries(AuditQuery(limit: 10)) }
            #expect(entries.last?.resources.map { "\($0.kind) \($0.id)" } == ["case case_1", "caseEvent case_1/3"])
            // The case's creation is indexed; each append's entry is named by
            // the event's row instead, and found through it.
            #expect(try await indexRows() == ["case case_1 1"])
            let named = try await store.read { tx in
                try Row.fetchAll(
                    (tx as! SQLTransaction).sqliteDatabase!,
                    sql: "SELECT sequence, auditSequence FROM caseEvent WHERE caseID = 'case_1' ORDER BY sequence"
                ).map { "\($0["sequence"] as Int64) \($0["auditSequence"] as Int64)" }
            }
            #expect(named == ["1 2", "2 3", "3 4"])
            func found(_ kind: String?, _ id: String?) async throws -> [UInt64] {
                var query = AuditQuery(limit: 10)
                query.resourceKind = kind
                query.resourceID = id
                let entries = try await store.read { [query] tx in try tx.auditEntries(query) }
                return entries.map(\.sequence)
            }
            #expect(try await found("case", "case_1") == [1, 2, 3, 4])
            #expect(try await found(nil, "case_1") == [1, 2, 3, 4])
            #expect(try await found("caseEvent", "case_1/2") == [3])
            #expect(try await found(nil, "case_1/2") == [3])
            #expect(try await found("case", nil) == [1, 2, 3, 4])
            // The appends' change-log entries keep no box of their own (the
            // notes are sealed in the timeline's rows), so the index of
            // entries with sealed fields, which erasure reads, has none of them.
            let boxes = try await store.read { tx in
                try Row.fetchAll(
                    (tx as! SQLTransaction).sqliteDatabase!,
                    sql: "SELECT sealed IS NOT NULL AS boxed FROM change WHERE recordID = 'case_1'"
                ).map { $0["boxed"] as Bool }
            }
            #expect(boxes == [false, false, false])
            let changes = try await store.read { try $0.changes(after: 0, limit: 10) }
            #expect(changes.map(\.event.caseRecord.events.first?.note.text) == (1...3).map { "Fictional note \($0)" })
            // A change whose event has no timeline row is data lost, said so, not an empty note.
            try await store.write { tx in
                try (tx as! SQLTransaction).sqliteDatabase!.execute(
                    sql: "DELETE FROM caseEvent WHERE caseID = 'case_1' AND sequence = 2"
                )
            }
            let lost = await #expect(throws: HavenError.self) {
                _ = try await store.read { try $0.changes(after: 0, limit: 10) }
            }
            #expect(lost?.code == .dataLoss)
            try await store.write { tx in
                try (tx as! SQLTransaction).sqliteDatabase!.execute(
                    sql: "DELETE FROM change WHERE sequence = 2"
                )
            }
            let rest = try await store.read { try $0.changes(after: 0, limit: 10) }
            #expect(rest.map(\.event.caseRecord.events.first?.note.text) == ["Fictional note 1", "Fictional note 3"])
            let index = try await store.read { tx in
                try String.fetchOne(
                    (tx as! SQLTransaction).sqliteDatabase!,
                    sql: "SELECT sql FROM sqlite_master WHERE name = 'change_record'"
                )
            }
            #expect(index?.hasSuffix("WHERE sealed IS NOT NULL") == true, "\(index ?? "no index")")

            // Entry 3 (event 2, whose row is gone) indexed as releases before
            // this one did: its event under its own kind, beside its case.
            #expect(try await found("caseEvent", "case_1/2") == [])
            try await store.write { tx in
                try (tx as! SQLTransaction).sqliteDatabase!.execute(
                    sql: """
                        INSERT INTO auditResource (kind, id, sequence)
                        VALUES ('caseEvent', 'case_1/2', 3), ('case', 'case_1', 3)
                        """
                )
            }
            #expect(try await found("caseEvent", "case_1/2") == [3])
            #expect(try await found("case", "case_1") == [1, 2, 3, 4])
            // … or with only the event's row, its case's gone: found through the event's row.
            try await store.write { tx in
                try (tx as! SQLTransaction).sqliteDatabase!.execute(
                    sql: "DELETE FROM auditResource WHERE kind = 'case' AND sequence = 3"
                )
            }
            #expect(try await found("caseEvent", "case_1/2") == [3])
            #expect(try await found("caseEvent", nil) == [2, 3, 4])
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
