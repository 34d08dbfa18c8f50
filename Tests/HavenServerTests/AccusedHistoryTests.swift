import Foundation
import GRDB
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import SwiftProtobuf
import Testing

/// An accused person's legal status history as rows of its own: a change
/// writes the change, not the case with every accused's whole history; reads
/// carry each accused's latest changes; `ListAccusedHistory` pages through
/// all of them; writes and feed items carry the changes they made.
@Suite("Accused status histories as rows")
struct AccusedHistoryTests {
    static func change(
        _ status: Haven_V1_AccusedLegalStatus,
        day: Int32,
        event: String = ""
    ) -> Haven_V1_AccusedStatusChange {
        var change = Haven_V1_AccusedStatusChange()
        change.status = status
        change.effectiveOn = AccountabilityScenario.date(2026, 4, day)
        change.eventID = event
        return change
    }

    static func accused(_ id: String) -> Haven_V1_Accused {
        var accused = Haven_V1_Accused()
        accused.id = id
        accused.name = "Fictional Accused \(id)"
        accused.role = .trafficker
        return accused
    }

    @Test(
        "the store keeps each accused's changes in sequence, beside a case record that does not grow, and refuses a gap",
        arguments: StoreUnderTest.allCases
    )
    func store(_ kind: StoreUnderTest) async throws {
        try await kind.withStore { store in
            try await store.audited { tx in try tx.insert(StoreConformanceTests.office("KOL")) }
            var record = StoreConformanceTests.caseRecord("case_h", reference: "KOL-H", openedAt: 1)
            var (first, second) = (Self.accused("acc_h1"), Self.accused("acc_h2"))
            first.record(Self.change(.atLarge, day: 1))
            second.record(Self.change(.inCustody, day: 1))
            record.accused = [first, second]
            try await store.audited { [record] tx in try tx.insert(record) }
            let added = try #require(try await store.read { try $0.load(Haven_V1_Case.self, id: "case_h") })
            #expect(added.accused.allSatisfy { $0.history.isEmpty }, "the record holds counts, not histories")
            #expect(added.accused.map(\.historyCount) == [1, 1])

            // Twelve changes of the first accused, one write each, and one write changing both.
            var current = added
            for day in Int32(2)...13 {
                let expected = current.version
                current.version += 1
                current.accused[0].record(
                    Self.change(day % 2 == 0 ? .onBail : .inCustody, day: day, event: "evt_\(day)")
                )
                #expect(current.accused[0].history.map(\.sequence) == [UInt32(day)])
                try await store.audited { [current] tx in try tx.update(current, expectedVersion: expected) }
                current.accused[0].history = []
            }
            let expected = current.version
            current.version += 1
            current.accused[0].record(Self.change(.convicted, day: 20, event: "evt_20"))
            current.accused[1].record(Self.change(.convicted, day: 20, event: "evt_20"))
            try await store.audited { [current] tx in try tx.update(current, expectedVersion: expected) }
            for index in current.accused.indices { current.accused[index].history = [] }

            let stored = try #require(try await store.read { try $0.load(Haven_V1_Case.self, id: "case_h") })
            #expect(stored.accused.map(\.historyCount) == [14, 2])
            #expect(stored.accused.map(\.legalStatus) == [.convicted, .convicted])
            #expect(stored.accused.allSatisfy { $0.history.isEmpty })
            var grown = stored
            grown.version = added.version
            grown.updatedAtUnixMs = added.updatedAtUnixMs
            for index in grown.accused.indices {
                grown.accused[index].historyCount = added.accused[index].historyCount
                grown.accused[index].legalStatus = added.accused[index].legalStatus
            }
            #expect(grown == added, "the record is what it was, but for its version, counts and statuses")

            let (all, tail, latest) = try await store.read { tx in
                (
                    try tx.accusedHistory(AccusedHistoryQuery("acc_h1", limit: 100))["acc_h1"] ?? [],
                    try tx.accusedHistory(AccusedHistoryQuery("acc_h1", after: 11, limit: 2))["acc_h1"] ?? [],
                    try tx.accusedHistory(.latest(of: ["acc_h1", "acc_h2", "acc_none"], limit: 3))
                )
            }
            #expect(all.map(\.sequence) == Array(1...14))
            #expect(all.map(\.status).last == .convicted && all[1].eventID == "evt_2")
            #expect(all[0].eventID.isEmpty, "the status the accused was added with came from no event")
            #expect(tail.map(\.sequence) == [12, 13])
            #expect(latest["acc_h1"]?.map(\.sequence) == [14, 13, 12])
            #expect(latest["acc_h2"]?.map(\.sequence) == [2, 1])
            #expect(latest["acc_none"] == nil)

            // A change that does not continue its history fails, and nothing of its write stays.
            var gap = current
            gap.version += 1
            var skipped = Self.change(.released, day: 25)
            skipped.sequence = 16
            gap.accused[1].history = [skipped]
            gap.accused[1].historyCount = 16
            await #expect(throws: HavenError.self) {
                try await store.audited { [gap, current] tx in try tx.update(gap, expectedVersion: current.version) }
            }
            let after = try #require(try await store.read { try $0.load(Haven_V1_Case.self, id: "case_h") })
            #expect(after.version == current.version && after.accused[1].historyCount == 2)

            // Each change's row is in the audit trail, and the facts agree with the rows.
            let covered = try await store.read { tx in
                try tx.auditEntries(AuditQuery(limit: 100)).flatMap(\.resources).map { "\($0.kind)/\($0.id)" }
            }
            #expect(covered.filter { $0.hasPrefix("accusedStatus/acc_h1/") }.count == 14)
            #expect(covered.contains("accusedStatus/acc_h2/2"))
            let differing = try await store.read { try $0.reportFactDifferences(limit: 10) }
            #expect(differing.isEmpty, "\(differing)")
        }
    }

    @Test(
        "a case read carries every accused's latest change first, then older ones round by round, within the byte bound"
    )
    func inlineBound() async throws {
        let directory = try TemporaryDirectory("haven-accused-inline")
        defer { directory.remove() }
        let store = try SQLiteStore(path: directory.path("haven.sqlite"), keys: freshStoreKeys())
        defer { try? store.close() }
        try await store.audited { tx in try tx.insert(StoreConformanceTests.office("KOL")) }
        // 600 accused with 10 changes each: about 300 KB of changes, more than a read carries.
        var record = StoreConformanceTests.caseRecord("case_many", reference: "KOL-M", openedAt: 1)
        for number in 0..<600 {
            var accused = Self.accused(String(format: "acc_%04d", number))
            for day in Int32(1)...10 {
                accused.record(Self.change(day % 2 == 0 ? .onBail : .inCustody, day: day, event: "evt_\(UUID())"))
            }
            record.accused.append(accused)
        }
        try await store.audited { [record] tx in try tx.insert(record) }
        let read = try await store.read { tx in
            try CaseReads.withLatest(try #require(try tx.load(Haven_V1_Case.self, id: "case_many")), tx)
        }
        let carried = read.accused.map(\.history.count)
        let total = read.accused.reduce(0) { $0 + $1.history.reduce(0) { $0 + $1.wireSize } }
        #expect(total <= HavenLimits.accusedHistoryInlineBytes)
        #expect(carried.allSatisfy { $0 >= 1 }, "every accused carries its latest change")
        #expect(carried.min() ?? 0 < HavenLimits.accusedHistoryInline, "the bound cut the histories short")
        #expect((carried.max() ?? 0) - (carried.min() ?? 0) <= 1, "round by round: no accused two changes ahead")
        #expect(carried == carried.sorted(by: >), "a round that does not fit ends with the accused listed last")
        for accused in read.accused {
            #expect(accused.historyCount == 10)
            #expect(accused.history.map(\.sequence) == Array((11 - UInt32(accused.history.count))...10))
        }
        // The next change in round order would not have fitted.
        let next = try #require(read.accused.first { $0.history.count == carried.min() })
        let its = try await store.read { tx in
            try tx.accusedHistory(.latest(of: [next.id], limit: HavenLimits.accusedHistoryInline))[next.id] ?? []
        }
        try #require(its.indices.contains(next.history.count))
        #expect(total + its[next.history.count].wireSize > HavenLimits.accusedHistoryInlineBytes)
    }

    @Test(
        "AddAccused and AppendCaseEvent answer with the changes they made; reads carry the latest 10; ListAccusedHistory pages through all, for the case's readers only; the feed carries each change once"
    )
    func service() async throws {
        let scenario = try await AccountabilityScenario()
        let survivor = try await scenario.survivor("ACC", key: "acc-survivor")
        var record = try await scenario.caseRecord("ACC", survivor: survivor, key: "acc-case")
        var add = Haven_V1_AddAccusedRequest()
        add.caseID = record.id
        add.expectedVersion = record.version
        add.accused.name = "Fictional Accused"
        add.accused.role = .recruiter
        add.idempotencyKey = "acc-add"
        record = try await scenario.call("director-kol", MethodCatalog.CaseService.addAccused, add)
        let accusedID = try #require(record.accused.first?.id)
        #expect(record.accused[0].history.map(\.sequence) == [1] && record.accused[0].historyCount == 1)
        #expect(record.accused[0].history[0].status == .atLarge && record.accused[0].history[0].eventID.isEmpty)

        for number in 2...25 {
            var append = Haven_V1_AppendCaseEventRequest()
            append.caseID = record.id
            append.event.occurredOn = AccountabilityScenario.date(2026, 5, Int32(number))
            if number % 2 == 0 {
                append.event.arrest.accusedIds = [accusedID]
            } else {
                append.event.bailGranted.accusedIds = [accusedID]
                append.event.bailGranted.court = "Fictional court"
            }
            append.idempotencyKey = "acc-\(number)"
            record = try await scenario.call("director-kol", MethodCatalog.CaseService.appendCaseEvent, append)
            #expect(record.accused[0].history.map(\.sequence) == [UInt32(number)], "a write carries what it made")
            #expect(record.accused[0].history.first?.eventID == record.events.last?.id)
            #expect(record.accused[0].historyCount == UInt32(number))
        }
        #expect(record.accused[0].legalStatus == .onBail)

        // A read: the latest 10, oldest first.
        let read = try await scenario.call(
            "director-kol",
            MethodCatalog.CaseService.getCase,
            .with { $0.caseID = record.id }
        )
        #expect(read.accused[0].historyCount == 25)
        #expect(read.accused[0].history.map(\.sequence) == Array(16...25))
        #expect(read.accused[0].legalStatus == read.accused[0].history.last?.status)
        var full = Haven_V1_ListCasesRequest()
        full.view = .full
        let listed = try await scenario.call("director-kol", MethodCatalog.CaseService.listCases, full)
        #expect(listed.cases.first { $0.id == record.id }?.accused[0].history.map(\.sequence) == Array(16...25))

        // Paging: every change once, in order.
        var pages: [[UInt32]] = []
        var request = Haven_V1_ListAccusedHistoryRequest()
        request.caseID = record.id
        request.accusedID = accusedID
        request.page.pageSize = 10
        repeat {
            let page = try await scenario.call("director-kol", MethodCatalog.CaseService.listAccusedHistory, request)
            #expect(page.historyCount == 25)
            pages.append(page.history.map(\.sequence))
            request.page.pageToken = page.page.nextPageToken
        } while !request.page.pageToken.isEmpty
        #expect(pages.map(\.count) == [10, 10, 5])
        #expect(pages.flatMap { $0 } == Array(1...25))
        var tail = Haven_V1_ListAccusedHistoryRequest()
        tail.caseID = record.id
        tail.accusedID = accusedID
        tail.afterSequence = 22
        let last = try await scenario.call("director-kol", MethodCatalog.CaseService.listAccusedHistory, tail)
        #expect(last.history.map(\.sequence) == [23, 24, 25])
        #expect(last.history.map(\.status) == [.onBail, .inCustody, .onBail])

        // A token is for the request it came from.
        var first = Haven_V1_ListAccusedHistoryRequest()
        first.caseID = record.id
        first.accusedID = accusedID
        first.page.pageSize = 10
        var moved = first
        moved.page.pageToken = try await scenario.call(
            "director-kol",
            MethodCatalog.CaseService.listAccusedHistory,
            first
        ).page.nextPageToken
        moved.accusedID = "acc_other"
        #expect(
            try await scenario.code("director-kol", MethodCatalog.CaseService.listAccusedHistory, moved)
                == .invalidArgument
        )

        // An accused of another case, a missing case, a reader without the case: NOT_FOUND, whatever exists.
        let other = try await scenario.caseRecord("ACC2", survivor: survivor, key: "acc-case-2")
        var elsewhere = tail
        elsewhere.caseID = other.id
        #expect(
            try await scenario.code("director-kol", MethodCatalog.CaseService.listAccusedHistory, elsewhere)
                == .notFound
        )
        var missing = tail
        missing.caseID = "case_missing"
        #expect(
            try await scenario.code("director-kol", MethodCatalog.CaseService.listAccusedHistory, missing) == .notFound
        )
        #expect(try await scenario.code("auditor", MethodCatalog.CaseService.listAccusedHistory, tail) == .notFound)
        var unnamed = tail
        unnamed.accusedID = ""
        #expect(
            try await scenario.code("director-kol", MethodCatalog.CaseService.listAccusedHistory, unnamed)
                == .invalidArgument
        )

        // The feed, replayed: each change in the item of the change that made it, once.
        let changes = try await scenario.haven.replayedChanges(as: try scenario.haven.principal("director-kol"))
        let snapshots = changes.compactMap { change -> Haven_V1_Case? in
            guard case .caseRecord(let snapshot) = change.subject, snapshot.id == record.id else { return nil }
            return snapshot
        }
        let statusChanges = snapshots.flatMap { $0.accused.flatMap(\.history) }
        #expect(statusChanges.map(\.sequence) == Array(1...25))

        // Each change's row is in the audit entry of its call, and the chain verifies.
        let entries = try await scenario.entries(kind: "accusedStatus", id: "\(accusedID)/25")
        #expect(entries.count == 1 && entries.first?.action == "haven.v1.CaseService/AppendCaseEvent")
        let path = scenario.haven.directory.path("haven.sqlite")
        let verdict = try await scenario.verify(path)
        #expect(verdict.intact, "\(verdict.problem)")

        // A change edited in the database (bail made custody) is caught: the chain commits to every row.
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            try db.execute(
                sql: "UPDATE accusedStatus SET kind = ? WHERE accusedID = ? AND sequence = 25",
                arguments: [Haven_V1_AccusedLegalStatus.inCustody.rawValue, accusedID]
            )
        }
        try queue.close()
        let tampered = try await scenario.verify(path)
        #expect(!tampered.intact && tampered.problem.contains("accusedStatus"), "\(tampered.problem)")
    }
}

/// A database written by the release before accused histories had rows of
/// their own (commit 781c97d; `Fixtures/release-781c97d/make-fixture.swift.txt`
/// wrote it through that release's embedded server: two offices, each with a
/// case whose three accused went through arrest, bail, re-arrest,
/// conviction and appeal — 14 changes — a case with one accused added in
/// custody, and a case with none). Fictional data under a development key
/// made for that directory only.
@Suite("Migrating accused histories written by the previous release", .serialized)
struct AccusedHistoryMigrationTests {
    static let fixture = RepositoryPaths.root.appendingPathComponent("Tests/HavenServerTests/Fixtures/release-781c97d")

    /// The cases as stored before, read straight from the file.
    static func casesBefore(_ path: String) throws -> [String: Haven_V1_Case] {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        return try queue.read { db in
            var cases: [String: Haven_V1_Case] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT id, body FROM record WHERE kind = 'case'") {
                cases[row["id"]] = try Haven_V1_Case(serializedBytes: row["body"] as Data)
            }
            return cases
        }
    }

    /// Checks every case of `store` against what it held before: each
    /// accused keeps everything but its history, which is in rows, whole and
    /// in order, with its count.
    static func expectMoved(_ store: any RecordStore, _ before: [String: Haven_V1_Case]) async throws {
        for (id, old) in before {
            let (head, histories) = try await store.read { tx in
                (
                    try tx.load(Haven_V1_Case.self, id: id),
                    try tx.accusedHistory(AccusedHistoryQuery.latest(of: old.accused.map(\.id), limit: 1_000))
                )
            }
            let record = try #require(head)
            #expect(record.version == old.version, "moving is not a change of the case")
            #expect(record.accused.map(\.id) == old.accused.map(\.id))
            for (accused, was) in zip(record.accused, old.accused) {
                #expect(accused.history.isEmpty, "the record no longer holds the history")
                #expect(accused.historyCount == UInt32(was.history.count))
                var bare = accused
                bare.historyCount = 0
                var wasBare = was
                wasBare.history = []
                #expect(bare == wasBare, "name, aliases, role and status kept")
                let moved = Array((histories[accused.id] ?? []).reversed())
                #expect(moved.map(\.sequence) == (0..<was.history.count).map { UInt32($0 + 1) })
                #expect(
                    moved.map {
                        var change = $0
                        change.sequence = 0
                        return change
                    } == was.history
                )
            }
        }
    }

    @Test(
        "the first open with the keys moves every accused's history into rows, facts and audit chain kept; opening again moves nothing"
    )
    func migrates() async throws {
        let directory = try ReleaseMigrationTests.copy(Self.fixture)
        defer { directory.remove() }
        let path = directory.path("haven.sqlite")
        let before = try Self.casesBefore(path)
        #expect(before.count == 6)
        #expect(before.values.reduce(0) { $0 + $1.accused.reduce(0) { $0 + $1.history.count } } == 30)
        let migrations = try {
            let queue = try DatabaseQueue(path: path)
            defer { try? queue.close() }
            return try queue.read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations") }
        }()
        #expect(migrations.last == "v6-survivor-services", "the previous release's schema")

        let opened = try await OpenedRelease(directory)
        let store = opened.store
        defer { try? store.close() }
        try await Self.expectMoved(store, before)

        // Reports by query give what a replay of every case's histories gives.
        let stored = try await ReportFactTests.stored(in: store)
        #expect(stored.cases.values.reduce(0) { $0 + $1.accused.reduce(0) { $0 + $1.history.count } } == 30)
        try await ReportFactTests.expectAgree(store, stored, seed: 14, offices: ["KOL", "MNL"])
        let caseOwned = try {
            let queue = try DatabaseQueue(path: path)
            defer { try? queue.close() }
            return try queue.read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM reportFact WHERE recordKind = 'case' AND fact = 2")
            }
        }()
        #expect(caseOwned == 0, "the facts of moved histories are their accused's")

        // Every row the move wrote is in the chain, and the chain verifies.
        try await opened.expectMoveAudited(["accusedStatus": 30, "case": 4])

        // A change after the move continues where the history ended.
        let (id, old) = try #require(before.first { $0.value.accused.count == 3 })
        try await store.audited { tx in
            guard var record = try tx.load(Haven_V1_Case.self, id: id) else {
                throw HavenError(code: .notFound, message: "the fixture's case is missing")
            }
            record.version += 1
            record.accused[1].record(AccusedHistoryTests.change(.released, day: 30, event: "evt_after_upgrade"))
            try tx.update(record, expectedVersion: record.version - 1)
        }
        let tail = try await store.read { tx in
            try tx.accusedHistory(AccusedHistoryQuery(old.accused[1].id, after: 4, limit: 10))
        }
        #expect(tail[old.accused[1].id]?.map(\.sequence) == [5, 6])
        try store.close()

        // Opening again moves nothing more.
        let reopened = try SQLiteStore(path: path, keys: opened.custodian.keys)
        defer { try? reopened.close() }
        let size = try await reopened.read { try $0.auditSize() }
        #expect(size == opened.sizeAfterMove + 1)
    }

    @Test(
        "opened without the keys, nothing moves; copied so into PostgreSQL, the first open there with the keys moves them",
        .enabled(if: TestPostgres.isEnabled, TestPostgres.skipped)
    )
    func migratesInPostgres() async throws {
        let directory = try ReleaseMigrationTests.copy(Self.fixture)
        defer { directory.remove() }
        let path = directory.path("haven.sqlite")
        let before = try Self.casesBefore(path)
        let custodian = try KeyCustodian.load(masterKeyFile: directory.path("master.key"))
        let signer = try CheckpointSigner.loadOrCreate(
            at: directory.path("audit-signing.key"),
            development: custodian.development
        )
        let source = try SQLiteStore(path: path, keys: nil)
        defer { try? source.close() }
        let (unmoved, held) = try await source.read { tx in
            let accused = before.values.flatMap(\.accused).map(\.id)
            return (
                try tx.accusedHistory(.latest(of: accused, limit: 100)),
                try tx.load(Haven_V1_Case.self, ids: before.keys.sorted()).flatMap(\.accused).map(\.history.count)
            )
        }
        #expect(unmoved.isEmpty, "without its keys the store leaves the histories where they are")
        #expect(held.reduce(0, +) == 30)
        try await TestPostgres.withStore(keys: nil) { target, location in
            _ = try await target.copy(from: source, principalID: "test", atUnixMs: 9)
            try await PostgresStore.using(location, keys: custodian.keys) { moved in
                try await Self.expectMoved(moved, before)
                let verdict = try await AuditVerifier(store: moved, publicKey: signer.publicKey).verify()
                #expect(verdict.intact, "\(verdict.problem)")
                let stored = try await ReportFactTests.stored(in: moved)
                try await ReportFactTests.expectAgree(moved, stored, seed: 15, offices: ["KOL", "MNL"])
            }
        }
    }
}
