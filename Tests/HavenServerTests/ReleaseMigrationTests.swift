import Foundation
import GRDB
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import SwiftProtobuf
import Testing

/// A database written by the release before case timelines had rows of
/// their own (commit 163ff1b; `Fixtures/release-163ff1b/make-fixture.swift.txt`
/// wrote it through that release's embedded server: two offices, six cases,
/// 104 events of every kind the fixture appends, sealed notes among them, a
/// bail alert, a status change). Fictional data under a development key made
/// for that directory only.
@Suite("Migrating a database written by the previous release", .serialized)
struct ReleaseMigrationTests {
    static let fixture = RepositoryPaths.root.appendingPathComponent("Tests/HavenServerTests/Fixtures/release-163ff1b")

    /// A case as the previous release stored it: its record, timeline inside.
    struct Before {
        var record: Haven_V1_Case
        var noteEvents: Set<String>
    }

    /// The fixture's files copied to a fresh directory (the checked-in copy is never opened for writing).
    func copy() throws -> TemporaryDirectory { try Self.copy(Self.fixture) }

    /// A release fixture's files (database, master key, signing key) copied
    /// to a fresh directory, readable by the owner only.
    static func copy(_ fixture: URL) throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory("haven-release-migration")
        for file in ["haven.sqlite", "master.key", "audit-signing.key"] {
            try FileManager.default.copyItem(
                atPath: fixture.appendingPathComponent(file).path,
                toPath: directory.path(file)
            )
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: directory.path(file))
        }
        return directory
    }

    /// The cases as stored before, read straight from the file.
    func casesBefore(_ path: String) throws -> [String: Before] {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        return try queue.read { db in
            let migrations = try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")
            #expect(
                migrations == ["v1-records", "v2-accountability", "v3-credentials"],
                "the previous release's schema"
            )
            var cases: [String: Before] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT id, body FROM record WHERE kind = 'case'") {
                let record = try Haven_V1_Case(serializedBytes: row["body"] as Data)
                let notes = record.events.filter { if case .note = $0.detail { true } else { false } }.map(\.id)
                cases[row["id"]] = Before(record: record, noteEvents: Set(notes))
            }
            return cases
        }
    }

    @Test("the first open moves every timeline into rows, keeps every event and note, and the audit chain verifies")
    func migrates() async throws {
        let directory = try self.copy()
        defer { directory.remove() }
        let path = directory.path("haven.sqlite")
        let before = try self.casesBefore(path)
        #expect(before.count == 6)
        #expect(before.values.reduce(0) { $0 + $1.record.events.count } == 104)
        #expect(before.values.allSatisfy { !$0.noteEvents.isEmpty })

        let opened = try await OpenedRelease(directory)
        let store = opened.store
        defer { try? store.close() }

        for (id, old) in before {
            let (head, timeline) = try await store.read { tx in
                (
                    try tx.load(Haven_V1_Case.self, id: id),
                    try tx.caseEvents(.timeline(id, limit: 1_000)).map(\.event)
                )
            }
            let record = try #require(head)
            #expect(record.events.isEmpty, "the record no longer holds its timeline")
            #expect(record.version == old.record.version, "moving is not a change of the case")
            #expect(record.eventCount == UInt32(old.record.events.count))
            // (The accused's histories moved too, out of the record: AccusedHistoryMigrationTests.expectMoved.)
            #expect(timeline.map(\.id) == old.record.events.map(\.id))
            #expect(timeline.map(\.sequence) == Array(1...UInt32(old.record.events.count)))
            for (event, was) in zip(timeline, old.record.events) {
                if old.noteEvents.contains(event.id) {
                    // Sealed in the record before, opened and sealed again in its own row.
                    #expect(event.note.text.hasPrefix("Fictional note "), "\(event.id)")
                } else {
                    #expect(event == was, "\(event.id)")
                }
            }
        }

        try await AccusedHistoryMigrationTests.expectMoved(store, before.mapValues(\.record))

        // Report facts were written for every case and survivor stored before:
        // reports by query give what a replay of every record gives.
        let stored = try await ReportFactTests.stored(in: store)
        #expect(stored.statusChanges.values.contains { !$0.isEmpty })
        #expect(stored.cases.values.contains { !$0.accused.isEmpty })
        let offices = Set(stored.cases.values.map(\.officeCode)).union(stored.survivors.values.map(\.officeCode))
        try await ReportFactTests.expectAgree(store, stored, seed: 11, offices: offices.sorted())

        // Every row the move wrote is in the chain, and the chain verifies.
        try await opened.expectMoveAudited(["caseEvent": 104, "case": 6])

        // No note is plain in the file.
        try store.close()
        let checkpoint = try DatabaseQueue(path: path)
        try await checkpoint.writeWithoutTransaction { try $0.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        try checkpoint.close()
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).range(of: Data("Fictional note".utf8)) == nil)

        // Opening again moves nothing more.
        let reopened = try SQLiteStore(path: path, keys: opened.custodian.keys)
        defer { try? reopened.close() }
        #expect(try await reopened.read { try $0.auditSize() } == opened.sizeAfterMove)

        // v8: the reports' index of events orders a day's events by their id,
        // which the server now makes time-ordered.
        try reopened.close()
        let schema = try DatabaseQueue(path: path)
        defer { try? schema.close() }
        let columns = try await schema.read { db in
            try String.fetchAll(db, sql: "SELECT name FROM pragma_index_info('caseEvent_office_day') ORDER BY seqno")
        }
        #expect(columns == ["officeCode", "occurredOn", "id"])
        // v9: the change log's index by record holds only entries with sealed fields.
        let changeIndex = try await schema.read { db in
            try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE name = 'change_record'")
        }
        #expect(changeIndex?.hasSuffix("WHERE sealed IS NOT NULL") == true, "\(changeIndex ?? "no index")")
    }

    @Test("after the move, an append continues the old timeline where it ended")
    func servesAfterMigration() async throws {
        let directory = try self.copy()
        defer { directory.remove() }
        let before = try self.casesBefore(directory.path("haven.sqlite"))
        let (id, old) = try #require(before.max { $0.value.record.events.count < $1.value.record.events.count })
        let custodian = try KeyCustodian.load(masterKeyFile: directory.path("master.key"))
        let store = try SQLiteStore(path: directory.path("haven.sqlite"), keys: custodian.keys)
        defer { try? store.close() }
        let appended = try await store.audited { tx -> Haven_V1_Case in
            guard var record = try tx.load(Haven_V1_Case.self, id: id) else {
                throw HavenError(code: .notFound, message: "the fixture's case is missing")
            }
            var event = Haven_V1_CaseEvent()
            event.id = "evt_after_upgrade"
            event.occurredOn = .with {
                $0.year = 2026
                $0.month = 12
                $0.day = 4
            }
            event.note.text = "Fictional note after the upgrade"
            record.eventCount += 1
            event.sequence = record.eventCount
            record.events = [event]
            record.version += 1
            try tx.update(record, expectedVersion: record.version - 1)
            return record
        }
        #expect(appended.eventCount == UInt32(old.record.events.count + 1))
        let timeline = try await store.read { try $0.caseEvents(.timeline(id, after: 38, limit: 10)) }.map(\.event)
        #expect(timeline.map(\.sequence) == [39, 40, 41])
        #expect(timeline.last?.note.text == "Fictional note after the upgrade")

        // v10: each row names the entry that wrote it — the move's, and the
        // append's — which then needs no index row of its own. A search by
        // the case finds both.
        let entries = try await store.read { tx in
            var query = AuditQuery(limit: 1_000)
            query.resourceKind = "case"
            query.resourceID = id
            return try tx.auditEntries(query)
        }
        let move = try #require(entries.first { $0.action == "store.migrate" })
        let append = try #require(entries.last)
        #expect(append.resources.contains { $0.kind == "caseEvent" && $0.id == "\(id)/41" })
        try store.close()
        let database = try DatabaseQueue(path: directory.path("haven.sqlite"))
        defer { try? database.close() }
        let named = try await database.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT auditSequence FROM caseEvent WHERE caseID = ? ORDER BY sequence",
                arguments: [id]
            ).map { $0["auditSequence"] as Int64? }
        }
        #expect(named == Array(repeating: Int64(move.sequence), count: 40) + [Int64(append.sequence)])
        let indexed = try await database.read { db in
            try Int.fetchOne(
                db,
                sql: "SELECT COUNT(*) FROM auditResource WHERE kind = 'case' AND id = ? AND sequence IN (?, ?)",
                arguments: [id, move.sequence, append.sequence]
            )
        }
        #expect(indexed == 0)
    }
}
