import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import MetricsTestKit
import SwiftProtobuf
import Synchronization
import Testing

/// A store the conformance suite runs against. Every implementation of
/// ``RecordStore`` is listed here and passes every test of the suite: no
/// behaviour exists in one store only.
enum StoreUnderTest: String, Sendable, CustomTestStringConvertible {
    case sqlite
    /// On the cluster of `HAVEN_TEST_POSTGRES_URL` (skipped without one, except in CI).
    case postgres

    var testDescription: String { self.rawValue }

    /// The stores the conformance suite runs against here: PostgreSQL only
    /// with a cluster, or in CI (see ``TestPostgres``; its own suites report
    /// the skip and its reason).
    static var allCases: [StoreUnderTest] { TestPostgres.isEnabled ? [.sqlite, .postgres] : [.sqlite] }

    /// Runs `body` with a fresh, empty store of this kind, reporting to
    /// `instruments`, then removes it.
    func withStore(
        instruments: StoreInstruments = .none,
        _ body: (any RecordStore) async throws -> Void
    ) async throws {
        switch self {
        case .sqlite:
            let directory = try TemporaryDirectory("haven-conformance")
            defer { directory.remove() }
            let store = try SQLiteStore(
                path: directory.path("haven.sqlite"),
                keys: freshStoreKeys(),
                instruments: instruments
            )
            defer { try? store.close() }
            try await body(store)
        case .postgres:
            try await TestPostgres.withStore(keys: freshStoreKeys(), instruments: instruments) { store, _ in
                try await body(store)
            }
        }
    }
}

/// The storage protocol's contract, in terms of ``RecordStore`` alone: the
/// single write path (audited or refused), compare-and-set, idempotency
/// keys, counters, cursor pagination, the change log, sealed identities and
/// notes, case timelines, and one linear audit chain under concurrent writes.
/// Its tests run one at a time: at the start of `swift test` every suite
/// starts at once on CI's two cores, and the suites that time a session's
/// cut-off within a second need the CPU then.
@Suite("Storage conformance", .serialized, .heavy)
struct StoreConformanceTests {
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

    static func note(_ text: String, on day: Int32) -> Haven_V1_CaseEvent {
        var event = Haven_V1_CaseEvent()
        event.id = "evt_" + text.split(separator: " ").joined(separator: "_")
        event.occurredOn = .with {
            $0.year = 2026
            $0.month = 3
            $0.day = day
        }
        event.note.text = text
        return event
    }

    /// Appends `events` to `record` in one audited write, as a service does:
    /// numbered on from its count, one version up; with `logged`, the change
    /// goes to the change log too, as the record writer puts it there.
    static func append(
        _ events: [Haven_V1_CaseEvent],
        to record: inout Haven_V1_Case,
        in store: any RecordStore,
        logged: Bool = false
    ) async throws {
        Self.number(events, onto: &record)
        try await store.audited { [record] tx in
            try tx.update(record, expectedVersion: record.version - 1)
            if logged { try Self.log(record, tx) }
        }
    }

    /// The first ten events of a case's timeline, notes opened.
    static func timeline(_ caseID: String, in store: any RecordStore) async throws -> [Haven_V1_CaseEvent] {
        try await store.read { tx in try tx.caseEvents(.timeline(caseID, limit: 10)) }.map(\.event)
    }

    /// Puts `events` on `record` as the ones its next update appends:
    /// numbered on from its count, one version up.
    static func number(_ events: [Haven_V1_CaseEvent], onto record: inout Haven_V1_Case) {
        record.events = []
        for var event in events {
            record.eventCount += 1
            event.sequence = record.eventCount
            record.events.append(event)
        }
        record.version += 1
    }

    /// The change-log entry the record writer appends for a case as written.
    @Sendable static func log(_ record: Haven_V1_Case, _ tx: any StoreWriter) throws {
        var change = Haven_V1_ChangeEvent()
        change.kind = .updated
        change.officeCode = record.officeCode
        change.caseRecord = record
        try tx.appendChange(NewChange(event: change, officeCode: record.officeCode))
    }

    func withStore(_ kind: StoreUnderTest, _ body: (any RecordStore) async throws -> Void) async throws {
        try await kind.withStore(body)
    }

    /// The audit chain, verified from the store's own rows.
    func verdict(_ store: any RecordStore) async throws -> Haven_V1_AuditVerdict {
        try await AuditVerifier(store: store, publicKey: Data()).verify()
    }

    @Test(
        "refuses to commit a write that no audit entry covers, and commits it with one",
        arguments: StoreUnderTest.allCases
    )
    func auditedOrNothing(_ kind: StoreUnderTest) async throws {
        try await self.withStore(kind) { store in
            let refused = await #expect(throws: HavenError.self) {
                try await store.write { tx in try tx.insert(Self.office("KOL")) }
            }
            #expect(refused?.code == .internal)
            let value1 = try await store.read { try $0.load(Haven_V1_Office.self, id: "KOL") }
            #expect(value1 == nil)
            // Written after its entry: refused as well.
            let late = await #expect(throws: HavenError.self) {
                try await store.write { tx in
                    try tx.appendAudit(NewAuditEntry(atUnixMs: 1, principalID: "test", action: "test"))
                    try tx.insert(Self.office("KOL"))
                }
            }
            #expect(late?.code == .internal)
            let value2 = try await store.read { try $0.auditSize() }
            #expect(value2 == 0)
            try await store.audited { tx in try tx.insert(Self.office("KOL")) }
            let entry = try #require(try await store.read { try $0.auditEntries(AuditQuery(limit: 10)) }.first)
            #expect(entry.resources.map(\.id) == ["KOL"])
            #expect(entry.resources.first?.storedHash.count == 32)
            #expect(entry.sequence == 1)
            #expect(entry.previousHash == Data(count: 32))
        }
    }

    @Test(
        "a call's write cancelled while it waits for the writer is not made (CANCELLED); a plain write cancelled so is made",
        arguments: StoreUnderTest.allCases
    )
    func cancelledBeforeBegun(_ kind: StoreUnderTest) async throws {
        let metrics = TestMetrics()
        try await kind.withStore(instruments: StoreInstruments(factory: metrics)) { store in
            let store = try #require(store as? any GroupCommittedStore)
            var tasks: (dropped: Task<Void, any Error>, made: Task<Void, any Error>)?
            try await store.holdingTheWriter { release in
                let dropped = Task {
                    try await store.writeUnlessCancelled { tx in
                        try tx.insert(Self.office("DRP"))
                        try tx.appendAudit(NewAuditEntry(atUnixMs: 1, principalID: "test", action: "test.write"))
                    }
                }
                let made = Task { try await store.audited { tx in try tx.insert(Self.office("MDE")) } }
                try await store.untilWaiting(2)
                dropped.cancel()
                made.cancel()
                release()
                tasks = (dropped, made)
            }
            let (dropped, made) = try #require(tasks)
            let error = await #expect(throws: HavenError.self) { try await dropped.value }
            #expect(error?.code == .cancelled)
            try await made.value
            let stored = try await store.read { tx in
                (try tx.load(Haven_V1_Office.self, id: "DRP"), try tx.load(Haven_V1_Office.self, id: "MDE"))
            }
            #expect(stored.0 == nil && stored.1 != nil)
            #expect(try await store.read { try $0.auditSize() } == 1)
            let verdict = try await self.verdict(store)
            #expect(verdict.intact, "\(verdict.problem)")
            #expect(try metrics.expectCounter(StoreMetricNames.cancelledWrites).totalValue == 1)
        }
    }

    @Test("inserts, loads by id, alias and ids, and refuses duplicates", arguments: StoreUnderTest.allCases)
    func insertAndLoad(_ kind: StoreUnderTest) async throws {
        try await self.withStore(kind) { store in
            try await store.audited { tx in
                try tx.insert(Self.office("KOL"))
                try tx.insert(Self.caseRecord("c1", reference: "KOL-2026-0001", openedAt: 10))
                try tx.insert(Self.caseRecord("c2", reference: "KOL-2026-0002", openedAt: 11))
            }
            let office = try await store.read { try $0.load(Haven_V1_Office.self, id: "KOL") }
            #expect(office?.name == "KOL field office")
            let byAlias = try await store.read { try $0.load(Haven_V1_Case.self, alias: "KOL-2026-0001") }
            #expect(byAlias?.id == "c1")
            let byIDs = try await store.read { try $0.load(Haven_V1_Case.self, ids: ["c2", "missing", "c1"]) }
            #expect(byIDs.map(\.id) == ["c2", "c1"], "in the order asked, missing ones skipped")

            let duplicateID = await #expect(throws: HavenError.self) {
                try await store.audited { tx in try tx.insert(Self.office("KOL")) }
            }
            #expect(duplicateID?.code == .alreadyExists)
            let duplicateAlias = await #expect(throws: HavenError.self) {
                try await store.audited { tx in
                    try tx.insert(Self.caseRecord("c3", reference: "KOL-2026-0001", openedAt: 11))
                }
            }
            #expect(duplicateAlias?.code == .alreadyExists)
        }
    }

    @Test("updates only from the current version, naming it when stale", arguments: StoreUnderTest.allCases)
    func compareAndSet(_ kind: StoreUnderTest) async throws {
        try await self.withStore(kind) { store in
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
            let value3 = try await store.read { try $0.load(Haven_V1_Office.self, id: "MNL") }
            #expect(value3?.name == "Manila")

            let missing = await #expect(throws: HavenError.self) {
                try await store.audited { tx in try tx.update(Self.office("ZZZ"), expectedVersion: 1) }
            }
            #expect(missing?.code == .notFound)
        }
    }

    @Test(
        "of writers racing from one version, exactly one wins; the rest learn the current one",
        arguments: StoreUnderTest.allCases
    )
    func racingWriters(_ kind: StoreUnderTest) async throws {
        try await self.withStore(kind) { store in
            try await store.audited { tx in try tx.insert(Self.office("KOL")) }
            let outcomes = try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<8 {
                    group.addTask {
                        var office = Self.office("KOL")
                        office.name = "Writer \(index)"
                        office.version = 2
                        do {
                            try await store.audited { [office] tx in try tx.update(office, expectedVersion: 1) }
                            return "won"
                        } catch let error as HavenError {
                            return "\(error.code) \(error.currentVersion ?? 0)"
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 == "won" }.count == 1)
            #expect(outcomes.filter { $0 == "\(HavenError.Code.failedPrecondition) 2" }.count == 7)
        }
    }

    @Test("rolls back everything a failed transaction wrote", arguments: StoreUnderTest.allCases)
    func rollback(_ kind: StoreUnderTest) async throws {
        try await self.withStore(kind) { store in
            await #expect(throws: HavenError.self) {
                try await store.audited { tx in
                    try tx.insert(Self.office("MUM"))
                    try tx.insert(Self.caseRecord("c1", reference: "MUM-2026-0001", office: "MUM", openedAt: 1))
                    try tx.appendChange(NewChange(event: Haven_V1_ChangeEvent(), officeCode: "MUM"))
                    _ = try tx.nextCounterValue("case:MUM:2026")
                    throw HavenError(code: .invalidArgument, message: "rejected after writing")
                }
            }
            let value4 = try await store.read { try $0.load(Haven_V1_Office.self, id: "MUM") }
            #expect(value4 == nil)
            let value5 = try await store.read { try $0.caseEvents(.timeline("c1", limit: 10)) }
            #expect(value5.isEmpty)
            let value6 = try await store.latestChangeSequence()
            #expect(value6 == 0)
            let value7 = try await store.read { try $0.auditSize() }
            #expect(value7 == 0)
            let value8 = try await store.audited { try $0.nextCounterValue("case:MUM:2026") }
            #expect(value8 == 1)
        }
    }

    @Test("counters count without gaps or repeats under concurrent writes", arguments: StoreUnderTest.allCases)
    func counters(_ kind: StoreUnderTest) async throws {
        try await self.withStore(kind) { store in
            let values = try await withThrowingTaskGroup(of: UInt64.self) { group in
                for _ in 0..<50 {
                    group.addTask { try await store.audited { try $0.nextCounterValue("case:KOL:2026") } }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(values.sorted() == Array(1...50))
            let value9 = try await store.audited { try $0.nextCounterValue("case:MNL:2026") }
            #expect(value9 == 1, "counters are per name")
        }
    }

    @Test("keeps idempotency records and accounts, and counts account changes", arguments: StoreUnderTest.allCases)
    func idempotencyAndAccounts(_ kind: StoreUnderTest) async throws {
        try await self.withStore(kind) { store in
            let before = try await store.read { try $0.accountRevision() }
            try await store.audited { tx in
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
            let idempotency = try await store.read { try $0.idempotencyRecord(principalID: "u1", key: "k1") }
            #expect(idempotency?.resultID == "KOL" && idempotency?.requestDigest == [9] && idempotency?.method == "m")
            let value10 = try await store.read { try $0.idempotencyRecord(principalID: "u2", key: "k1") }
            #expect(value10 == nil)
            let account = try await store.read { try $0.account(id: "u1") }
            #expect(account?.officeCodes == ["KOL", "MUM"] && account?.role == .admin)
            let value11 = try await store.read { try $0.accountRevision() }
            #expect(value11 > before)

            // Pages of accounts by id, optionally of one role.
            try await store.audited { tx in
                for (id, role) in [("u2", Haven_V1_Role.caseworker), ("u3", .auditor), ("u4", .caseworker)] {
                    try tx.saveAccount(Account(id: id, displayName: id, role: role, createdAtUnixMs: 1))
                }
            }
            let firstPage = try await store.read { try $0.accounts(after: "", role: nil, limit: 2) }
            #expect(firstPage.map(\.id) == ["u1", "u2"])
            let nextPage = try await store.read { try $0.accounts(after: "u2", role: nil, limit: 2) }
            #expect(nextPage.map(\.id) == ["u3", "u4"])
            let caseworkers = try await store.read { try $0.accounts(after: "u2", role: .caseworker, limit: 10) }
            #expect(caseworkers.map(\.id) == ["u4"])
        }
    }

    @Test(
        "refuses to store a survivor's identity in the record body; seals and opens it beside",
        arguments: StoreUnderTest.allCases
    )
    func identityNeverInBody(_ kind: StoreUnderTest) async throws {
        try await self.withStore(kind) { store in
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
            let value12 = try await store.read { try $0.identity(survivorID: "s1") }
            #expect(value12?.legalName == "Fictional Name")
            survivor.version = 2
            try await store.audited { [survivor] tx in try tx.update(survivor, expectedVersion: 1) }
            let value13 = try await store.read { try $0.identity(survivorID: "s1") }
            #expect(value13?.legalName == "Fictional Name")
            // Erased: the identity is gone, the record stays.
            survivor.version = 3
            try await store.audited { [survivor] tx in try tx.update(survivor, expectedVersion: 2, sealed: .erase) }
            let value14 = try await store.read { try $0.identity(survivorID: "s1") }
            #expect(value14 == nil)
            let value15 = try await store.read { try $0.hasRecordKey(kind: .survivor, id: "s1") }
            #expect(value15 == false)
        }
    }

    @Test("refuses a record over 1 MiB and changes nothing", arguments: StoreUnderTest.allCases)
    func recordLimit(_ kind: StoreUnderTest) async throws {
        try await self.withStore(kind) { store in
            var office = Self.office("KOL")
            office.name = String(repeating: "x", count: HavenLimits.maxRecordBytes + 1)
            let error = await #expect(throws: HavenError.self) {
                try await store.audited { [office] tx in try tx.insert(office) }
            }
            #expect(error?.code == .failedPrecondition)
            let value16 = try await store.read { try $0.load(Haven_V1_Office.self, id: "KOL") }
            #expect(value16 == nil)
        }
    }

    @Test(
        "pages newest first without skipping or repeating while records are inserted",
        arguments: StoreUnderTest.allCases
    )
    func stablePages(_ kind: StoreUnderTest) async throws {
        try await self.withStore(kind) { store in
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

    @Test("filters by office, status and update time, and counts", arguments: StoreUnderTest.allCases)
    func filters(_ kind: StoreUnderTest) async throws {
        try await self.withStore(kind) { store in
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
            let value17 = try await store.read { [query] in try $0.page(Haven_V1_Case.self, query) }
            #expect(value17.records.map(\.id) == ["c", "b"])
            query.statuses = [Haven_V1_CaseStatus.closed.rawValue]
            let value18 = try await store.read { [query] in try $0.count(Haven_V1_Case.self, query) }
            #expect(value18 == 1)
            var recent = RecordQuery(order: .newestFirst)
            recent.updatedSince = 10
            let value19 = try await store.read { [recent] in try $0.page(Haven_V1_Case.self, recent) }
            #expect(value19.records.map(\.id) == ["b"])
        }
    }

    @Test("numbers changes without gaps in commit order and notifies subscribers", arguments: StoreUnderTest.allCases)
    func changeLog(_ kind: StoreUnderTest) async throws {
        try await self.withStore(kind) { store in
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
            let value20 = try await store.read { try $0.changes(after: 15, limit: 2) }
            #expect(value20.map(\.sequence) == [16, 17])
            var last: UInt64 = 0
            while last < 20, let next = await iterator.next() { last = next }
            #expect(last == 20)
        }
    }

    @Test(
        "keeps a case's timeline as its own rows: numbered on, notes sealed and opened, queried by case, office, day and kind",
        arguments: StoreUnderTest.allCases
    )
    func timelines(_ kind: StoreUnderTest) async throws {
        try await self.withStore(kind) { store in
            var record = Self.caseRecord("c1", reference: "KOL-2026-0001", openedAt: 1)
            try await store.audited { [record] tx in
                try tx.insert(record)
                try tx.insert(Self.caseRecord("m1", reference: "MNL-2026-0001", office: "MNL", openedAt: 1))
            }
            // Three appends, each carrying only its own event.
            for (index, text) in ["Fictional first note", "Fictional second note", "Fictional third note"].enumerated()
            {
                try await Self.append([Self.note(text, on: Int32(index + 1))], to: &record, in: store)
            }
            var rescue = Haven_V1_CaseEvent()
            rescue.id = "evt_rescue"
            rescue.occurredOn = .with {
                $0.year = 2026
                $0.month = 4
                $0.day = 1
            }
            rescue.rescueOperation.peopleRescued = 3
            try await Self.append([rescue], to: &record, in: store)

            let head = try #require(try await store.read { try $0.load(Haven_V1_Case.self, id: "c1") })
            #expect(head.events.isEmpty && head.eventCount == 4 && head.version == 5)
            let all = try await store.read { try $0.caseEvents(.timeline("c1", limit: 100)) }.map(\.event)
            #expect(all.map(\.sequence) == [1, 2, 3, 4])
            #expect(
                all.prefix(3).map(\.note.text) == [
                    "Fictional first note", "Fictional second note", "Fictional third note",
                ]
            )
            let value21 = try await store.read { try $0.caseEvents(.timeline("c1", after: 2, limit: 1)) }
            #expect(value21.map(\.event.sequence) == [3])
            var latest = CaseEventQuery.timeline("c1", limit: 2)
            latest.newestFirst = true
            let value22 = try await store.read { [latest] in try $0.caseEvents(latest) }
            #expect(value22.map(\.event.sequence) == [4, 3])
            var office = CaseEventQuery(limit: 100)
            office.officeCode = "KOL"
            office.occurredFrom = "2026-03-02"
            office.occurredThrough = "2026-03-31"
            let value23 = try await store.read { [office] in try $0.caseEvents(office) }
            #expect(value23.map(\.event.sequence) == [2, 3])
            office.occurredFrom = nil
            office.occurredThrough = nil
            office.kinds = [.rescueOperation]
            let rescues = try await store.read { [office] in try $0.caseEvents(office) }
            #expect(rescues.map(\.caseID) == ["c1"] && rescues.first?.event.rescueOperation.peopleRescued == 3)
            office.officeCode = "MNL"
            let value24 = try await store.read { [office] in try $0.caseEvents(office) }
            #expect(value24.isEmpty)

            // An event that does not continue the timeline, or a count that does not match it, is refused.
            var gap = Self.note("Fictional gap", on: 9)
            gap.sequence = 6
            var skipping = head
            skipping.events = [gap]
            skipping.eventCount = 6
            skipping.version = 6
            let refused = await #expect(throws: HavenError.self) {
                try await store.audited { [skipping] tx in try tx.update(skipping, expectedVersion: 5) }
            }
            #expect(refused?.code == .internal)
            var miscounted = head
            var next = Self.note("Fictional miscounted", on: 9)
            next.sequence = 5
            miscounted.events = [next]
            miscounted.version = 6
            await #expect(throws: HavenError.self) {
                try await store.audited { [miscounted] tx in try tx.update(miscounted, expectedVersion: 5) }
            }
            let value25 = try await store.read { try $0.caseEvents(.timeline("c1", limit: 100)) }
            #expect(value25.count == 4)

            // Erasing the case's sealed data drops its notes' text; the events stay.
            var erased = head
            erased.version = 6
            try await store.audited { [erased] tx in try tx.update(erased, expectedVersion: 5, sealed: .erase) }
            let after = try await store.read { try $0.caseEvents(.timeline("c1", limit: 100)) }.map(\.event)
            #expect(after.map(\.sequence) == [1, 2, 3, 4])
            #expect(after.prefix(3).allSatisfy { $0.note.text.isEmpty })

            let verdict = try await self.verdict(store)
            #expect(verdict.intact, "\(verdict.problem)")
        }
    }

    @Test(
        "the change log gives an appended note's text, read from its timeline row, and loses it when the case is erased",
        arguments: StoreUnderTest.allCases
    )
    func changeLogNotes(_ kind: StoreUnderTest) async throws {
        try await self.withStore(kind) { store in
            var record = Self.caseRecord("c1", reference: "KOL-2026-0001", openedAt: 1)
            try await store.audited { [record] tx in
                try tx.insert(record)
                try Self.log(record, tx)
            }
            // One append of two notes and a rescue, then one of a note.
            var appends: [[Haven_V1_CaseEvent]] = [[], []]
            for (index, text) in ["Fictional first note", "Fictional second note"].enumerated() {
                appends[0].append(Self.note(text, on: Int32(index + 1)))
            }
            var rescue = Haven_V1_CaseEvent()
            rescue.id = "evt_rescue"
            rescue.occurredOn = Self.note("", on: 3).occurredOn
            rescue.rescueOperation.peopleRescued = 2
            appends[0].append(rescue)
            appends[1].append(Self.note("Fictional third note", on: 4))
            for events in appends { try await Self.append(events, to: &record, in: store, logged: true) }
            func notes() async throws -> [[String]] {
                let changes = try await store.read { tx in try tx.changes(after: 0, limit: 100) }
                return changes.map { change in
                    change.event.caseRecord.events.map { event in
                        if case .note(let note) = event.detail { note.text } else { "-" }
                    }
                }
            }
            let before = try await notes()
            #expect(before == [[], ["Fictional first note", "Fictional second note", "-"], ["Fictional third note"]])
            var erased = record
            erased.events = []
            erased.version += 1
            try await store.audited { [erased] tx in
                try tx.update(erased, expectedVersion: erased.version - 1, sealed: .erase)
                try Self.log(erased, tx)
            }
            let after = try await notes()
            #expect(after == [[], ["", "", "-"], [""], []])
            let verdict = try await self.verdict(store)
            #expect(verdict.intact, "\(verdict.problem)")
        }
    }

    @Test(
        "a timeline event out of sequence (a gap, a repeat, a batch with a hole) is refused INTERNAL and writes nothing",
        arguments: StoreUnderTest.allCases
    )
    func eventsOutOfSequence(_ kind: StoreUnderTest) async throws {
        try await self.withStore(kind) { store in
            var record = Self.caseRecord("c1", reference: "KOL-2026-0001", openedAt: 1)
            try await store.audited { [record] tx in try tx.insert(record) }
            try await Self.append([Self.note("Fictional note one", on: 1)], to: &record, in: store)
            try await Self.append([Self.note("Fictional note two", on: 2)], to: &record, in: store)
            let stored = record
            // Sequence 4 after 2, 2 again after 2, and 3 then 5 in one write.
            let attempts: [(name: String, sequences: [UInt32], message: String)] = [
                ("gap", [4], "(4 after 2)"),
                ("repeat", [2], "(2 after 2)"),
                ("hole in a batch", [3, 5], "(5 after 3)"),
            ]
            for attempt in attempts {
                var bad = stored
                bad.version += 1
                bad.events = attempt.sequences.map { sequence in
                    var event = Self.note("Fictional note \(attempt.name) \(sequence)", on: 3)
                    event.sequence = sequence
                    return event
                }
                bad.eventCount = attempt.sequences.last ?? 0
                let refused = await #expect(throws: HavenError.self, "\(attempt.name)") {
                    try await store.audited { [bad] tx in try tx.update(bad, expectedVersion: stored.version) }
                }
                #expect(refused?.code == .internal, "\(attempt.name)")
                #expect(
                    refused?.message.contains("out of sequence \(attempt.message)") == true,
                    "\(refused?.message ?? "")"
                )
            }
            let timeline = try await Self.timeline("c1", in: store)
            #expect(timeline.map(\.sequence) == [1, 2])
            #expect(timeline.map(\.note.text) == ["Fictional note one", "Fictional note two"])
            let loaded = try await store.read { try $0.load(Haven_V1_Case.self, id: "c1") }
            #expect(loaded?.version == stored.version)
            // The next in sequence is taken.
            try await Self.append([Self.note("Fictional note three", on: 3)], to: &record, in: store)
            let after = try await Self.timeline("c1", in: store)
            #expect(after.map(\.sequence) == [1, 2, 3])
            let verdict = try await self.verdict(store)
            #expect(verdict.intact, "\(verdict.problem)")
        }
    }

    @Test(
        "a note appended in the write that erased its case, after one sealed under its old key, is sealed under its new key and opens",
        arguments: StoreUnderTest.allCases
    )
    func appendAfterErasureInOneWrite(_ kind: StoreUnderTest) async throws {
        try await self.withStore(kind) { store in
            var record = Self.caseRecord("c1", reference: "KOL-2026-0001", openedAt: 1)
            try await store.audited { [record] tx in try tx.insert(record) }
            try await Self.append([Self.note("Fictional note before", on: 1)], to: &record, in: store)
            let loaded = record
            try await store.audited { tx in
                guard var current = try tx.load(Haven_V1_Case.self, id: loaded.id) else {
                    throw HavenError(code: .notFound, message: "the case is missing")
                }
                #expect(current.version == loaded.version)
                // Sealed under the case's key, which the transaction then holds unwrapped …
                Self.number([Self.note("Fictional note during", on: 2)], onto: &current)
                try tx.update(current, expectedVersion: current.version - 1)
                // … until the erasure destroys it …
                current.events = []
                current.version += 1
                try tx.update(current, expectedVersion: current.version - 1, sealed: .erase)
                // … so this one gets a key of its own.
                Self.number([Self.note("Fictional note after", on: 3)], onto: &current)
                try tx.update(current, expectedVersion: current.version - 1)
            }
            let timeline = try await Self.timeline("c1", in: store)
            #expect(timeline.map(\.note.text) == ["", "", "Fictional note after"])
            #expect(try await store.read { tx in try tx.hasRecordKey(kind: .caseRecord, id: "c1") })
            let verdict = try await self.verdict(store)
            #expect(verdict.intact, "\(verdict.problem)")
        }
    }

    @Test(
        "finds exactly the audit entries that name a timeline event, by kind, id or both, page by page",
        arguments: StoreUnderTest.allCases
    )
    func auditByTimelineEvent(_ kind: StoreUnderTest) async throws {
        try await self.withStore(kind) { store in
            var first = Self.caseRecord("c1", reference: "KOL-2026-0001", openedAt: 1)
            var second = Self.caseRecord("c2", reference: "KOL-2026-0002", openedAt: 1)
            try await store.audited { [first, second] tx in
                try tx.insert(first)
                try tx.insert(second)
            }
            // Entry 1 creates both cases; entries 2–73 append c1's events 1–72
            // (more entries about c1 than one page of candidates holds); 74–75 c2's.
            for index in 1...72 {
                try await Self.append([Self.note("Fictional note \(index)", on: 1)], to: &first, in: store)
            }
            for index in 1...2 {
                try await Self.append([Self.note("Fictional other note \(index)", on: 1)], to: &second, in: store)
            }
            func sequences(
                _ kind: String?,
                _ id: String?,
                limit: Int = 1000,
                newestFirst: Bool = false,
                before: UInt64? = nil
            ) async throws -> [UInt64] {
                var query = AuditQuery(limit: limit)
                query.resourceKind = kind
                query.resourceID = id
                query.newestFirst = newestFirst
                query.beforeSequence = before
                let entries = try await store.read { [query] tx in try tx.auditEntries(query) }
                // Every entry found names the resource asked for.
                #expect(
                    entries.allSatisfy { entry in
                        entry.resources.contains { (kind == nil || $0.kind == kind) && (id == nil || $0.id == id) }
                    }
                )
                return entries.map(\.sequence)
            }
            #expect(try await sequences("caseEvent", "c1/1") == [2])
            #expect(try await sequences("caseEvent", "c1/1", limit: 1, newestFirst: true) == [2])
            #expect(try await sequences("caseEvent", "c1/72") == [73])
            #expect(try await sequences("caseEvent", "c2/2") == [75])
            #expect(try await sequences("caseEvent", "c1/73").isEmpty)
            #expect(try await sequences("survivorService", "c1/1").isEmpty)
            #expect(try await sequences(nil, "c1/5") == [6])
            #expect(try await sequences("caseEvent", nil) == Array(2...75))
            #expect(try await sequences("case", "c1") == Array(1...73))
            #expect(try await sequences("case", "c2") == [1, 74, 75])
            #expect(try await sequences("case", nil) == Array(1...75))
            #expect(try await sequences("caseEvent", nil, limit: 10, newestFirst: true) == Array((66...75).reversed()))
            #expect(
                try await sequences("caseEvent", nil, limit: 10, newestFirst: true, before: 66)
                    == Array((56...65).reversed())
            )
            let verdict = try await self.verdict(store)
            #expect(verdict.intact, "\(verdict.problem)")
        }
    }

    @Test("concurrent writes leave one linear audit chain that verifies", arguments: StoreUnderTest.allCases)
    func oneChain(_ kind: StoreUnderTest) async throws {
        try await self.withStore(kind) { store in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<64 {
                    group.addTask {
                        try await store.audited { tx in
                            try tx.insert(Self.office("O\(index)"))
                            try tx.appendChange(NewChange(event: Haven_V1_ChangeEvent(), officeCode: "O\(index)"))
                        }
                    }
                }
                try await group.waitForAll()
            }
            let entries = try await store.read { try $0.auditEntries(AuditQuery(limit: 100)) }
            #expect(entries.map(\.sequence) == Array(1...64))
            let verdict = try await self.verdict(store)
            #expect(verdict.intact, "\(verdict.problem)")
            #expect(verdict.entries == 64)
            #expect(verdict.recordsChecked >= 128)
        }
    }

    @Test(
        "writes of one group that fail after their audit entry leave no trace in the chain; the next ones chain onto the last that committed",
        arguments: StoreUnderTest.allCases
    )
    func failuresInAGroup(_ kind: StoreUnderTest) async throws {
        try await self.withStore(kind) { store in
            let committed = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<60 {
                    group.addTask {
                        do {
                            try await store.write { tx in
                                try tx.insert(Self.office("F\(index)"))
                                try tx.appendAudit(
                                    NewAuditEntry(atUnixMs: 1, principalID: "test", action: "office.create")
                                )
                                if index.isMultiple(of: 3) {
                                    throw HavenError(code: .invalidArgument, message: "refused after its audit entry")
                                }
                            }
                            return true
                        } catch let error as HavenError where error.code == .invalidArgument {
                            return false
                        }
                    }
                }
                return try await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
            }
            #expect(committed == 40)
            let entries = try await store.read { try $0.auditEntries(AuditQuery(limit: 100)) }
            #expect(entries.map(\.sequence) == Array(1...40))
            let verdict = try await self.verdict(store)
            #expect(verdict.intact && verdict.entries == 40, "\(verdict.problem)")
            let refused = try await store.read { try $0.load(Haven_V1_Office.self, id: "F3") }
            #expect(refused == nil)
        }
    }

    @Test(
        "a record loaded and updated twice in one write moves version by version; a later write from a stale version is refused with the current one",
        arguments: StoreUnderTest.allCases
    )
    func updatesWithinOneWrite(_ kind: StoreUnderTest) async throws {
        try await self.withStore(kind) { store in
            try await store.audited { tx in try tx.insert(Self.office("MNL")) }
            try await store.audited { tx in
                guard var office = try tx.load(Haven_V1_Office.self, id: "MNL") else { return }
                office.name = "Manila"
                office.version = 2
                try tx.update(office, expectedVersion: 1)
                office.name = "Manila field office"
                office.version = 3
                try tx.update(office, expectedVersion: 2)
                // From the version it held before the first update: stale within the write, too.
                office.version = 4
                #expect(throws: HavenError.self) { try tx.update(office, expectedVersion: 2) }
            }
            let stored = try await store.read { try $0.load(Haven_V1_Office.self, id: "MNL") }
            #expect(stored?.version == 3 && stored?.name == "Manila field office")
            let stale = await #expect(throws: HavenError.self) {
                try await store.audited { tx in
                    guard var office = try tx.load(Haven_V1_Office.self, id: "MNL") else { return }
                    office.version = 4
                    try tx.update(office, expectedVersion: 2)
                }
            }
            #expect(stale?.code == .failedPrecondition && stale?.currentVersion == 3)
        }
    }

    @Test(
        "an update sets the indexed columns that change and keeps the others: the record is found by its new reference, office and update time, and by the ones it kept, never by those it left",
        arguments: StoreUnderTest.allCases
    )
    func indexedColumns(_ kind: StoreUnderTest) async throws {
        try await self.withStore(kind) { store in
            try await store.audited { tx in
                try tx.insert(Self.caseRecord("c1", reference: "KOL-1", office: "KOL", openedAt: 1))
                try tx.insert(Self.caseRecord("c2", reference: "KOL-2", office: "KOL", openedAt: 2))
            }
            func found(office: String? = nil, updatedSince: Int64? = nil) async throws -> [String] {
                var query = RecordQuery(order: .idAscending)
                if let office { query.officeCodes = [office] }
                query.updatedSince = updatedSince
                return try await store.read { [query] in try $0.page(Haven_V1_Case.self, query).records.map(\.id) }
            }
            func alias(_ reference: String) async throws -> String? {
                try await store.read { try $0.load(Haven_V1_Case.self, alias: reference)?.id }
            }
            // Loaded, then updated twice in one write: the second update starts from what the first set.
            try await store.audited { tx in
                guard var record = try tx.load(Haven_V1_Case.self, id: "c1") else { return }
                record.reference = "MUM-1"
                record.officeCode = "MUM"
                record.updatedAtUnixMs = 10
                record.version = 2
                try tx.update(record, expectedVersion: 1)
                record.reference = "MUM-1A"
                record.version = 3
                try tx.update(record, expectedVersion: 2)
            }
            #expect(try await alias("KOL-1") == nil)
            #expect(try await alias("MUM-1") == nil)
            #expect(try await alias("MUM-1A") == "c1")
            #expect(try await found(office: "MUM") == ["c1"])
            #expect(try await found(office: "KOL") == ["c2"])
            #expect(try await found(updatedSince: 10) == ["c1"])
            // Updated without loading it first (the store reads what is indexed), its status alone changed.
            var closed = Self.caseRecord("c1", reference: "MUM-1A", office: "MUM", openedAt: 1)
            closed.updatedAtUnixMs = 10
            closed.status = .closed
            closed.version = 4
            try await store.audited { [closed] tx in try tx.update(closed, expectedVersion: 3) }
            #expect(try await alias("MUM-1A") == "c1", "the reference it kept still finds it")
            #expect(try await found(office: "MUM") == ["c1"])
            #expect(try await found(updatedSince: 10) == ["c1"])
            var statuses = RecordQuery(order: .idAscending)
            statuses.statuses = [Haven_V1_CaseStatus.closed.rawValue]
            let closedCount = try await store.read { [statuses] in try $0.count(Haven_V1_Case.self, statuses) }
            #expect(closedCount == 1)
            // Another record may take the reference c1 left, and not the one it holds.
            var taken = Self.caseRecord("c2", reference: "MUM-1A", office: "KOL", openedAt: 2)
            taken.version = 2
            let duplicate = await #expect(throws: HavenError.self) {
                try await store.audited { [taken] tx in try tx.update(taken, expectedVersion: 1) }
            }
            // A clear refusal (not a storage fault), and nothing of c2 changed.
            #expect(duplicate?.code == .alreadyExists)
            #expect(try await store.read { try $0.load(Haven_V1_Case.self, id: "c2") }?.reference == "KOL-2")
            taken.reference = "KOL-1"
            try await store.audited { [taken] tx in try tx.update(taken, expectedVersion: 1) }
            #expect(try await alias("KOL-1") == "c2")
            let stored = try await store.read { try $0.load(Haven_V1_Case.self, id: "c1") }
            #expect(stored?.reference == "MUM-1A" && stored?.officeCode == "MUM" && stored?.status == .closed)
            #expect(stored?.openedAtUnixMs == 1 && stored?.updatedAtUnixMs == 10 && stored?.version == 4)
            let verdict = try await self.verdict(store)
            #expect(verdict.intact, "\(verdict.problem)")
        }
    }

    @Test(
        "a partner's referral filter finds the survivors referred to it in the statuses named, and an empty set of statuses finds none (never all)",
        arguments: StoreUnderTest.allCases
    )
    func referralFilter(_ kind: StoreUnderTest) async throws {
        try await self.withStore(kind) { store in
            try await store.audited { tx in
                for (id, code) in [("s1", "KOL-S-0001"), ("s2", "KOL-S-0002")] {
                    var survivor = Haven_V1_Survivor()
                    survivor.id = id
                    survivor.code = code
                    survivor.officeCode = "KOL"
                    survivor.version = 1
                    try tx.insert(survivor)
                }
                var referral = Haven_V1_Referral()
                referral.id = "r1"
                referral.survivorID = "s1"
                referral.partnerID = "partner-1"
                referral.officeCode = "KOL"
                referral.status = .accepted
                referral.version = 1
                try tx.insert(referral)
            }
            func referred(_ statuses: [Haven_V1_ReferralStatus]) async throws -> [String] {
                var query = RecordQuery(order: .idAscending)
                query.referredBy = ReferralFilter(partnerID: "partner-1", statuses: statuses.map(\.rawValue))
                return try await store.read { [query] tx in try tx.page(Haven_V1_Survivor.self, query).records.map(\.id)
                }
            }
            #expect(try await referred([.accepted]) == ["s1"])
            #expect(try await referred([.declined]) == [])
            #expect(try await referred([]) == [], "an empty filter fails closed")
        }
    }
}
