import Foundation
import GRDB
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import HavenWireTesting
import SwiftProtobuf
import Testing

/// Reports by aggregate queries over ``ReportFact`` rows, checked against
/// the replay that reports did before (every case and survivor loaded, their
/// histories walked in Swift) on random offices written through the store's
/// one write path: inserts, later updates that change facts, and updates that
/// do not.
@Suite("Report facts", .serialized, .heavy)
struct ReportFactTests {
    /// What the scenario wrote: the records as stored, and each case's
    /// status-change events in timeline order.
    struct Written {
        var cases: [String: Haven_V1_Case] = [:]
        var statusChanges: [String: [Haven_V1_CaseEvent]] = [:]
        var survivors: [String: Haven_V1_Survivor] = [:]
        /// Each survivor's services (from their rows).
        var services: [String: [Haven_V1_ServiceRecord]] = [:]
    }

    static func day(_ random: inout SplitMix64) -> Haven_V1_CivilDate {
        .with {
            $0.year = Int32.random(in: 2025...2026, using: &random)
            $0.month = Int32.random(in: 1...12, using: &random)
            $0.day = Int32.random(in: 1...28, using: &random)
        }
    }

    static let offices = ["KOL", "MNL"]

    /// Writes a random scenario through `store` and returns what it wrote.
    static func write(_ store: any RecordStore, seed: UInt64) async throws -> Written {
        var random = SplitMix64(seed: seed)
        var written = Written()
        let statuses = Haven_V1_CaseStatus.allCases.filter { $0 != .unspecified }
        let legal = Haven_V1_AccusedLegalStatus.allCases.filter { $0 != .unspecified }
        let services = Haven_V1_ServiceKind.allCases.filter { $0 != .unspecified }
        try await store.audited { tx in
            for code in Self.offices { try tx.insert(StoreConformanceTests.office(code)) }
        }
        func accused(_ index: Int, _ random: inout SplitMix64) -> Haven_V1_Accused {
            var accused = Haven_V1_Accused()
            accused.id = "acc_\(index)"
            // Histories in order, their days in any order (backdated entries).
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                var change = Haven_V1_AccusedStatusChange()
                change.status = legal.randomElement(using: &random)!
                change.effectiveOn = Self.day(&random)
                accused.record(change)
            }
            return accused
        }
        var accusedCount = 0
        for index in 0..<40 {
            var record = StoreConformanceTests.caseRecord(
                "case_\(index)",
                reference: "REF-\(index)",
                office: Self.offices[Int.random(in: 0...3, using: &random) == 0 ? 1 : 0],
                openedAt: Int64(index + 1)
            )
            record.openedOn = Self.day(&random)
            record.status = statuses.randomElement(using: &random)!
            for _ in 0..<Int.random(in: 0...2, using: &random) {
                accusedCount += 1
                record.accused.append(accused(accusedCount, &random))
            }
            try await store.audited { [record] tx in try tx.insert(record) }
            written.cases[record.id] = record
        }
        for (index, code) in (0..<30).map({ ($0, $0 % 4 == 3 ? "MNL" : "KOL") }) {
            var survivor = Haven_V1_Survivor()
            survivor.id = "srv_\(index)"
            survivor.code = "S-\(index)"
            survivor.officeCode = code
            survivor.version = 1
            survivor.intakeOn = Self.day(&random)
            survivor.createdAtUnixMs = Int64(index + 1)
            survivor.updatedAtUnixMs = Int64(index + 1)
            try await store.audited { [survivor] tx in try tx.insert(survivor) }
            written.survivors[survivor.id] = survivor
        }
        // Later writes, one at a time and several to a transaction: status
        // changes appended, accused added or their histories grown, services
        // and placements recorded, and updates that change no fact.
        for _ in 0..<120 {
            let caseIDs = written.cases.keys.sorted()
            let survivorIDs = written.survivors.keys.sorted()
            let batch = Int.random(in: 1...3, using: &random)
            var updates: [(any StoredRecord, UInt64)] = []
            for _ in 0..<batch {
                if Bool.random(using: &random) {
                    let id = caseIDs.randomElement(using: &random)!
                    guard !updates.contains(where: { $0.0.recordID == id }) else { continue }
                    var record = written.cases[id]!
                    let expected = record.version
                    record.version += 1
                    switch Int.random(in: 0...3, using: &random) {
                    case 0, 1:
                        var event = Haven_V1_CaseEvent()
                        record.eventCount += 1
                        event.id = "evt_\(id)_\(record.eventCount)"
                        event.sequence = record.eventCount
                        event.occurredOn = Self.day(&random)
                        event.statusChanged.previousStatus = record.status
                        event.statusChanged.newStatus = statuses.randomElement(using: &random)!
                        record.status = event.statusChanged.newStatus
                        record.events = [event]
                        written.statusChanges[id, default: []].append(event)
                    case 2:
                        if record.accused.isEmpty || Bool.random(using: &random) {
                            accusedCount += 1
                            record.accused.append(accused(accusedCount, &random))
                        } else {
                            let which = Int.random(in: 0..<record.accused.count, using: &random)
                            var change = Haven_V1_AccusedStatusChange()
                            change.status = legal.randomElement(using: &random)!
                            change.effectiveOn = Self.day(&random)
                            record.accused[which].record(change)
                        }
                    default:
                        record.updatedAtUnixMs += 1  // no fact changes
                    }
                    // Written: the changes this write made (the store holds the others).
                    let before = Dictionary(
                        uniqueKeysWithValues: written.cases[id]!.accused.map { ($0.id, $0.historyCount) }
                    )
                    var sent = record
                    for index in sent.accused.indices {
                        let stored = before[sent.accused[index].id] ?? 0
                        sent.accused[index].history.removeAll { $0.sequence <= stored }
                    }
                    updates.append((sent, expected))
                    record.events = []
                    written.cases[id] = record
                } else {
                    let id = survivorIDs.randomElement(using: &random)!
                    guard !updates.contains(where: { $0.0.recordID == id }) else { continue }
                    var survivor = written.survivors[id]!
                    let expected = survivor.version
                    survivor.version += 1
                    switch Int.random(in: 0...2, using: &random) {
                    case 0:
                        var service = Haven_V1_ServiceRecord()
                        service.id = "svc_\(id)_\(survivor.serviceCount)"
                        service.kind = services.randomElement(using: &random)!
                        service.deliveredOn = Self.day(&random)
                        survivor.record(service)
                        written.services[id, default: []] += survivor.services
                    case 1:
                        // A new stay ends the current one the day before (days kept simple: 1–28).
                        var placement = Haven_V1_Placement()
                        placement.id = "plc_\(id)_\(survivor.placements.count)"
                        placement.homeName = "Fictional home"
                        placement.startedOn = Self.day(&random)
                        if let last = survivor.placements.indices.last, !survivor.placements[last].hasEndedOn {
                            survivor.placements[last].endedOn = placement.startedOn
                        }
                        if Int.random(in: 0...2, using: &random) == 0 { placement.endedOn = Self.day(&random) }
                        survivor.placements.append(placement)
                    default:
                        survivor.updatedAtUnixMs += 1  // no fact changes
                    }
                    updates.append((survivor, expected))
                    survivor.services = []
                    written.survivors[id] = survivor
                }
            }
            // Loaded first (as the record writer does) or not: both ways of knowing the facts before.
            let load = Bool.random(using: &random)
            try await store.audited { [updates] tx in
                for (record, expected) in updates {
                    if let record = record as? Haven_V1_Case {
                        if load { _ = try tx.load(Haven_V1_Case.self, id: record.id) }
                        try tx.update(record, expectedVersion: expected)
                    } else if let survivor = record as? Haven_V1_Survivor {
                        if load { _ = try tx.load(Haven_V1_Survivor.self, id: survivor.id) }
                        try tx.update(survivor, expectedVersion: expected)
                    }
                }
            }
        }
        return written
    }

    /// What a store holds, as ``Written``: every case and survivor, and each
    /// case's status changes (from its timeline rows).
    static func stored(in store: any RecordStore) async throws -> Written {
        try await store.read { tx in
            var written = Written()
            func all<R: StoredRecord>(_ type: R.Type) throws -> [R] {
                var query = RecordQuery(order: .newestFirst, limit: 500)
                var records: [R] = []
                repeat {
                    let page = try tx.page(R.self, query)
                    records += page.records
                    query.after = page.next
                } while query.after != nil
                return records
            }
            for var record in try all(Haven_V1_Case.self) {
                let histories = try tx.accusedHistory(
                    AccusedHistoryQuery.latest(of: record.accused.map(\.id), limit: 100_000)
                )
                for index in record.accused.indices {
                    record.accused[index].history = (histories[record.accused[index].id] ?? []).reversed()
                }
                written.cases[record.id] = record
                var changes = CaseEventQuery.timeline(record.id, limit: 100_000)
                changes.kinds = [.statusChanged]
                written.statusChanges[record.id] = try tx.caseEvents(changes).map(\.event)
            }
            for survivor in try all(Haven_V1_Survivor.self) {
                written.survivors[survivor.id] = survivor
                written.services[survivor.id] = try tx.survivorServices(
                    SurvivorServiceQuery(survivor.id, limit: 100_000)
                )
            }
            return written
        }
    }

    /// The figures as reports replayed them before facts had rows: every
    /// record of the office walked in Swift.
    static func replayed(_ written: Written, _ query: OfficeFiguresQuery) -> OfficeFigures {
        func day(_ date: Haven_V1_CivilDate) -> String { dayString(date) ?? "" }
        let (first, last) = (query.firstDay, query.lastDay)
        var figures = OfficeFigures()
        for record in written.cases.values where record.officeCode == query.officeCode {
            let opened = day(record.openedOn)
            if first <= opened && opened <= last { figures.casesOpened += 1 }
            let changes = written.statusChanges[record.id] ?? []
            if opened <= last {
                var status = changes.first?.statusChanged.previousStatus ?? record.status
                for change in changes where day(change.occurredOn) <= last { status = change.statusChanged.newStatus }
                figures.casesByStatus[status.rawValue, default: 0] += 1
            }
            for accused in record.accused {
                if let status = accused.history.last(where: { day($0.effectiveOn) <= last })?.status {
                    figures.accusedByStatus[status.rawValue, default: 0] += 1
                }
            }
        }
        var survivorsByKind: [Int: Set<String>] = [:]
        for survivor in written.survivors.values where survivor.officeCode == query.officeCode {
            let intake = day(survivor.intakeOn)
            if first <= intake && intake <= last { figures.survivorsRegistered += 1 }
            let placed = survivor.placements.contains {
                day($0.startedOn) <= last && (!$0.hasEndedOn || last <= day($0.endedOn))
            }
            if placed { figures.survivorsInAftercare += 1 }
            for service in written.services[survivor.id] ?? []
            where first <= day(service.deliveredOn) && day(service.deliveredOn) <= last {
                figures.services[service.kind.rawValue, default: (0, 0)].count += 1
                survivorsByKind[service.kind.rawValue, default: []].insert(survivor.id)
            }
        }
        for (kind, survivors) in survivorsByKind { figures.services[kind]?.survivors = Int64(survivors.count) }
        return figures
    }

    static func periods(seed: UInt64, offices: [String] = Self.offices) -> [OfficeFiguresQuery] {
        var random = SplitMix64(seed: seed ^ 0xFACE)
        var periods: [OfficeFiguresQuery] = []
        for office in offices {
            periods.append(OfficeFiguresQuery(officeCode: office, firstDay: "2000-01-01", lastDay: "2099-12-31"))
            for _ in 0..<8 {
                let (a, b) = (dayString(Self.day(&random))!, dayString(Self.day(&random))!)
                periods.append(OfficeFiguresQuery(officeCode: office, firstDay: min(a, b), lastDay: max(a, b)))
            }
        }
        periods.append(OfficeFiguresQuery(officeCode: "NONE", firstDay: "2000-01-01", lastDay: "2099-12-31"))
        return periods
    }

    static func expectAgree(
        _ store: any RecordStore,
        _ written: Written,
        seed: UInt64,
        offices: [String] = Self.offices
    ) async throws {
        for query in Self.periods(seed: seed, offices: offices) {
            let figures = try await store.read { tx in try tx.officeFigures(query) }
            let expected = Self.replayed(written, query)
            #expect(
                figures == expected,
                "\(query.officeCode) \(query.firstDay)…\(query.lastDay): \(figures) ≠ \(expected)"
            )
        }
    }

    @Test(
        "an office's figures by query equal those replayed from every record, after inserts and updates that change facts or not",
        arguments: StoreUnderTest.allCases,
        [UInt64(1), 2, 3]
    )
    func agreesWithReplay(_ kind: StoreUnderTest, seed: UInt64) async throws {
        try await kind.withStore { store in
            let written = try await Self.write(store, seed: seed)
            // The scenario is not empty where it counts.
            let all = Self.replayed(
                written,
                OfficeFiguresQuery(officeCode: "KOL", firstDay: "2000-01-01", lastDay: "2099-12-31")
            )
            #expect(all.casesOpened > 10 && all.accusedByStatus.values.reduce(0, +) > 5)
            #expect(all.survivorsInAftercare > 0 && !all.services.isEmpty)
            #expect(written.statusChanges.values.map(\.count).reduce(0, +) > 10)
            try await Self.expectAgree(store, written, seed: seed)
        }
    }

    @Test(
        "facts of records written before are filled once at the first open, in the migrating transaction",
        arguments: StoreUnderTest.allCases
    )
    func filledAtOpen(_ kind: StoreUnderTest) async throws {
        let keys = freshStoreKeys()
        // As a database of the release before facts: the records, no facts, marked pending.
        let pending = [
            "DELETE FROM reportFact", "INSERT INTO meta (name, value) VALUES ('report-facts', 'pending')",
        ]
        let filled = "SELECT COUNT(*) FROM meta WHERE name = 'report-facts' AND value = 'rows'"
        switch kind {
        case .sqlite:
            let directory = try TemporaryDirectory("haven-report-facts")
            defer { directory.remove() }
            let path = directory.path("haven.sqlite")
            var store = try SQLiteStore(path: path, keys: keys)
            let written = try await Self.write(store, seed: 7)
            try store.close()
            let queue = try DatabaseQueue(path: path)
            try await queue.write { db in for statement in pending { try db.execute(sql: statement) } }
            try queue.close()
            store = try SQLiteStore(path: path, keys: keys)
            try await Self.expectAgree(store, written, seed: 7)
            try store.close()
            let reopened = try DatabaseQueue(path: path)
            defer { try? reopened.close() }
            #expect(try await reopened.read { db in try Int.fetchOne(db, sql: filled) } == 1)
        case .postgres:
            try await TestPostgres.withStore(keys: keys) { store, location in
                let written = try await Self.write(store, seed: 7)
                for statement in pending { try await TestPostgres.onServer(location, statement) }
                try await PostgresStore.using(location, keys: keys) { reopened in
                    try await Self.expectAgree(reopened, written, seed: 7)
                }
                #expect(try await TestPostgres.count(location, filled) == 1)
            }
        }
    }
}

extension ReportFactTests {
    @Test(
        "audit verification finds a report fact edited, inserted or deleted in the database, which no audited row shows",
        arguments: StoreUnderTest.allCases
    )
    func verifiedAgainstRecords(_ kind: StoreUnderTest) async throws {
        let keys = freshStoreKeys()
        // One edit at a time, each undone after: an accused's status counted
        // as another, a service nobody recorded, a fact moved away from its
        // accused. (`acc_…` is case_3's first accused, written with its case
        // by `write(_:seed:)`; its history's facts are its own.)
        let tamperingOf: (String) -> [(edit: String, undo: String)] = { accusedID in
            let first = "recordID = '\(accusedID)' AND fact = 2 AND position = 1"
            return [
                (
                    "UPDATE reportFact SET category = category + 1 WHERE \(first)",
                    "UPDATE reportFact SET category = category - 1 WHERE \(first)"
                ),
                (
                    "INSERT INTO reportFact (recordKind, recordID, fact, position, officeCode, category, prior, subject, fromDay) VALUES ('survivor', 'srv_1', 3, 999, 'KOL', 3, 0, '', '2026-01-01')",
                    "DELETE FROM reportFact WHERE recordID = 'srv_1' AND position = 999"
                ),
                (
                    "UPDATE reportFact SET recordID = 'acc_gone' WHERE \(first)",
                    "UPDATE reportFact SET recordID = '\(accusedID)' WHERE recordID = 'acc_gone'"
                ),
            ]
        }
        func check(
            _ store: any RecordStore,
            _ written: Written,
            _ edit: (String) async throws -> Void
        ) async throws {
            let accusedID = try #require(written.cases["case_3"]?.accused.first?.id)
            let tampering = tamperingOf(accusedID)
            let clean = try await AuditVerifier(store: store, publicKey: Data()).verify()
            #expect(clean.intact, "\(clean.problem)")
            for (tamper, undo) in tampering {
                try await edit(tamper)
                let verdict = try await AuditVerifier(store: store, publicKey: Data()).verify()
                #expect(!verdict.intact && verdict.problem.contains("report facts of"), "\(tamper)")
                try await edit(undo)
            }
            let again = try await AuditVerifier(store: store, publicKey: Data()).verify()
            #expect(again.intact, "undone, the facts agree again: \(again.problem)")
        }
        switch kind {
        case .sqlite:
            let directory = try TemporaryDirectory("haven-report-facts")
            defer { directory.remove() }
            let path = directory.path("haven.sqlite")
            let store = try SQLiteStore(path: path, keys: keys)
            defer { try? store.close() }
            let written = try await Self.write(store, seed: 5)
            #expect(written.cases["case_3"]?.accused.first?.history.isEmpty == false, "the edit has a fact to change")
            let queue = try DatabaseQueue(path: path)
            defer { try? queue.close() }
            try await check(store, written) { sql in try await queue.write { db in try db.execute(sql: sql) } }
        case .postgres:
            try await TestPostgres.withStore(keys: keys) { store, location in
                let written = try await Self.write(store, seed: 5)
                #expect(written.cases["case_3"]?.accused.first?.history.isEmpty == false)
                try await check(store, written) { sql in try await TestPostgres.onServer(location, sql) }
            }
        }
    }
}
