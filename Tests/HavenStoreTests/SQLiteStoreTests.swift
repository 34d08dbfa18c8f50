import Foundation
import GRDB
import HavenProtocol
import HavenTestSupport
import SwiftProtobuf
import Testing

@testable import HavenStore

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

    static func caseRecord(_ id: String, reference: String, office: String = "KOL", openedAt: Int64) -> Haven_V1_Case {
        var record = Haven_V1_Case()
        record.id = id
        record.reference = reference
        record.officeCode = office
        record.status = .intake
        record.version = 1
        record.openedAtUnixMs = openedAt
        record.updatedAtUnixMs = openedAt
        return record
    }

    func withStore(_ body: (SQLiteStore, TemporaryDirectory) async throws -> Void) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try await body(try SQLiteStore(path: directory.path("haven.sqlite"), keys: freshStoreKeys()), directory)
    }

    @Test("opens in WAL mode with PRAGMA synchronous = FULL on the writer, and secure_delete on every connection")
    func durability() async throws {
        try await self.withStore { store, _ in
            let synchronous = try store.synchronousMode()
            let journal = try store.journalMode()
            #expect(synchronous == 2)
            #expect(journal == "wal")
            let readerSecureDelete = try await store.read { tx in
                try Int.fetchOne((tx as! SQLiteTransaction).db, sql: "PRAGMA secure_delete")
            }
            let writerSecureDelete = try await store.write { tx in
                try Int.fetchOne((tx as! SQLiteTransaction).db, sql: "PRAGMA secure_delete")
            }
            #expect(readerSecureDelete == 1)
            #expect(writerSecureDelete == 1)
        }
    }

    @Test("refuses to commit a write that no audit entry covers, and commits it with one")
    func auditedOrNothing() async throws {
        try await self.withStore { store, _ in
            let refused = await #expect(throws: HavenError.self) {
                try await store.write { tx in try tx.insert(Self.office("KOL")) }
            }
            #expect(refused?.code == .internal)
            #expect(try await store.read { try $0.load(Haven_V1_Office.self, id: "KOL") } == nil)
            // Written after its entry: refused as well.
            let late = await #expect(throws: HavenError.self) {
                try await store.write { tx in
                    try tx.appendAudit(NewAuditEntry(atUnixMs: 1, principalID: "test", action: "test"))
                    try tx.insert(Self.office("KOL"))
                }
            }
            #expect(late?.code == .internal)
            #expect(try await store.read { try $0.auditSize() } == 0)
            try await store.audited { tx in try tx.insert(Self.office("KOL")) }
            let entry = try #require(try await store.read { try $0.auditEntries(AuditQuery(limit: 10)) }.first)
            #expect(entry.resources.map(\.id) == ["KOL"])
            #expect(entry.resources.first?.storedHash.count == 32)
            #expect(entry.sequence == 1)
            #expect(entry.previousHash == Data(count: 32))
        }
    }

    @Test("inserts, loads by id and alias, and refuses duplicates")
    func insertAndLoad() async throws {
        try await self.withStore { store, _ in
            try await store.audited { tx in
                try tx.insert(Self.office("KOL"))
                try tx.insert(Self.caseRecord("c1", reference: "KOL-2026-0001", openedAt: 10))
            }
            let office = try await store.read { try $0.load(Haven_V1_Office.self, id: "KOL") }
            #expect(office?.name == "KOL field office")
            let byAlias = try await store.read { try $0.load(Haven_V1_Case.self, alias: "KOL-2026-0001") }
            #expect(byAlias?.id == "c1")

            let duplicateID = await #expect(throws: HavenError.self) {
                try await store.audited { tx in try tx.insert(Self.office("KOL")) }
            }
            #expect(duplicateID?.code == .alreadyExists)
            let duplicateAlias = await #expect(throws: HavenError.self) {
                try await store.audited { tx in
                    try tx.insert(Self.caseRecord("c2", reference: "KOL-2026-0001", openedAt: 11))
                }
            }
            #expect(duplicateAlias?.code == .alreadyExists)
        }
    }

    @Test("updates only from the current version, naming it when stale")
    func compareAndSet() async throws {
        try await self.withStore { store, _ in
            try await store.audited { tx in try tx.insert(Self.office("MNL")) }
            var changed = Self.office("MNL")
            changed.name = "Manila"
            changed.version = 2
            try await store.audited { [changed] tx in try tx.update(changed, expectedVersion: 1) }

            var stale = Self.office("MNL")
            stale.name = "Lost update"
            stale.version = 2
            let error = await #expect(throws: HavenError.self) {
                try await store.audited { [stale] tx in try tx.update(stale, expectedVersion: 1) }
            }
            #expect(error?.code == .failedPrecondition)
            #expect(error?.currentVersion == 2)
            let stored = try await store.read { try $0.load(Haven_V1_Office.self, id: "MNL") }
            #expect(stored?.name == "Manila")

            let missing = await #expect(throws: HavenError.self) {
                try await store.audited { tx in try tx.update(Self.office("ZZZ"), expectedVersion: 1) }
            }
            #expect(missing?.code == .notFound)
        }
    }

    @Test("rolls back everything a failed transaction wrote")
    func rollback() async throws {
        try await self.withStore { store, _ in
            await #expect(throws: HavenError.self) {
                try await store.audited { tx in
                    try tx.insert(Self.office("MUM"))
                    try tx.appendChange(NewChange(event: Haven_V1_ChangeEvent(), officeCode: "MUM"))
                    _ = try tx.nextCounterValue("case:MUM:2026")
                    throw HavenError(code: .invalidArgument, message: "rejected after writing")
                }
            }
            let value1 = try await store.read { try $0.load(Haven_V1_Office.self, id: "MUM") }
            #expect(value1 == nil)
            let value2 = try await store.latestChangeSequence()
            #expect(value2 == 0)
            let value3 = try await store.audited { try $0.nextCounterValue("case:MUM:2026") }
            #expect(value3 == 1)
        }
    }

    @Test("refuses to store a survivor's identity in the record body")
    func identityNeverInBody() async throws {
        try await self.withStore { store, _ in
            var survivor = Haven_V1_Survivor()
            survivor.id = "s1"
            survivor.code = "KOL-S-0001"
            survivor.identity.legalName = "Fictional Name"
            let error = await #expect(throws: HavenError.self) {
                try await store.audited { [survivor] tx in try tx.insert(survivor) }
            }
            #expect(error?.code == .internal)
            #expect(error?.message.contains("Fictional") == false)

            survivor.clearIdentity()
            survivor.officeCode = "KOL"
            survivor.version = 1
            var identity = Haven_V1_SurvivorIdentity()
            identity.legalName = "Fictional Name"
            try await store.audited { [survivor, identity] tx in try tx.insert(survivor, identity: identity) }
            let value4 = try await store.read { try $0.identity(survivorID: "s1") }
            #expect(value4?.legalName == "Fictional Name")
            survivor.version = 2
            try await store.audited { [survivor] tx in try tx.update(survivor, expectedVersion: 1) }
            let value5 = try await store.read { try $0.identity(survivorID: "s1") }
            #expect(value5?.legalName == "Fictional Name")
        }
    }

    @Test("pages newest first without skipping or repeating while records are inserted")
    func stablePages() async throws {
        try await self.withStore { store, _ in
            try await store.audited { tx in
                for index in 1...7 {
                    try tx.insert(
                        Self.caseRecord("c\(index)", reference: "KOL-2026-000\(index)", openedAt: Int64(index / 2))
                    )
                }
            }
            var seen: [String] = []
            var query = RecordQuery(order: .newestFirst, limit: 3)
            var inserted = 100
            repeat {
                let page = try await store.read { [query] in try $0.page(Haven_V1_Case.self, query) }
                seen += page.records.map(\.id)
                query.after = page.next
                // A newer case arrives between pages: it belongs before the
                // cursor, so it must not appear in later pages.
                inserted += 1
                try await store.audited { [inserted] tx in
                    try tx.insert(Self.caseRecord("n\(inserted)", reference: "KOL-2026-\(inserted)", openedAt: 1_000))
                }
            } while query.after != nil
            #expect(seen == ["c7", "c6", "c5", "c4", "c3", "c2", "c1"])
        }
    }

    @Test("filters by office, status and update time, and counts")
    func filters() async throws {
        try await self.withStore { store, _ in
            try await store.audited { tx in
                try tx.insert(Self.caseRecord("a", reference: "KOL-1", office: "KOL", openedAt: 1))
                var closed = Self.caseRecord("b", reference: "MUM-1", office: "MUM", openedAt: 2)
                closed.status = .closed
                closed.updatedAtUnixMs = 50
                try tx.insert(closed)
                try tx.insert(Self.caseRecord("c", reference: "MUM-2", office: "MUM", openedAt: 3))
            }
            var query = RecordQuery(order: .newestFirst)
            query.officeCodes = ["MUM"]
            let value6 = try await store.read { [query] in try $0.page(Haven_V1_Case.self, query) }.records.map(\.id)
            #expect(value6 == ["c", "b"])
            query.statuses = [Haven_V1_CaseStatus.closed.rawValue]
            let value7 = try await store.read { [query] in try $0.count(Haven_V1_Case.self, query) }
            #expect(value7 == 1)
            var recent = RecordQuery(order: .newestFirst)
            recent.updatedSince = 10
            let value8 = try await store.read { [recent] in try $0.page(Haven_V1_Case.self, recent) }.records.map(\.id)
            #expect(value8 == ["b"])
        }
    }

    @Test("numbers changes without gaps in commit order and notifies subscribers")
    func changeLog() async throws {
        try await self.withStore { store, _ in
            let notifications = store.changeNotifications()
            var iterator = notifications.makeAsyncIterator()
            #expect(await iterator.next() == 0)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<20 {
                    group.addTask {
                        try await store.audited { tx in
                            var event = Haven_V1_ChangeEvent()
                            event.officeCode = "KOL"
                            event.committedAtUnixMs = Int64(index)
                            try tx.appendChange(NewChange(event: event, officeCode: "KOL"))
                        }
                    }
                }
                try await group.waitForAll()
            }
            let entries = try await store.read { try $0.changes(after: 0, limit: 100) }
            #expect(entries.map(\.sequence) == Array(1...20))
            #expect(entries.allSatisfy { $0.event.sequence == $0.sequence })
            let value9 = try await store.read { try $0.changes(after: 15, limit: 2) }.map(\.sequence)
            #expect(value9 == [16, 17])
            var last: UInt64 = 0
            while last < 20, let next = await iterator.next() { last = next }
            #expect(last == 20)
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
