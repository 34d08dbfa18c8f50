import Foundation
import GRDB
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import SwiftProtobuf
import Testing

/// A database written by the release before survivors' services had rows of
/// their own (commit f227466; `Fixtures/release-f227466/make-fixture.swift.txt`
/// wrote it through that release's embedded server: two offices, six
/// survivors, four of them with services — 34 in all, sealed details among
/// them — placements and a consent each, and two without services).
/// Fictional data under a development key made for that directory only.
@Suite("Migrating survivors' services written by the previous release", .serialized)
struct ServiceMigrationTests {
    static let fixture = RepositoryPaths.root.appendingPathComponent("Tests/HavenServerTests/Fixtures/release-f227466")

    func copy() throws -> TemporaryDirectory { try ReleaseMigrationTests.copy(Self.fixture) }

    /// The survivors as stored before, read straight from the file (service
    /// details are sealed beside the body: empty here).
    func survivorsBefore(_ path: String) throws -> [String: Haven_V1_Survivor] {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        return try queue.read { db in
            let migrations = try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")
            #expect(migrations.last == "v5-report-facts", "the previous release's schema")
            var survivors: [String: Haven_V1_Survivor] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT id, body FROM record WHERE kind = 'survivor'") {
                survivors[row["id"]] = try Haven_V1_Survivor(serializedBytes: row["body"] as Data)
            }
            return survivors
        }
    }

    /// Checks every survivor of `store` against what the fixture held.
    func expectMoved(_ store: any RecordStore, _ before: [String: Haven_V1_Survivor]) async throws {
        var details = 0
        for (id, old) in before {
            let (head, services, identity) = try await store.read { tx in
                (
                    try tx.load(Haven_V1_Survivor.self, id: id),
                    try tx.survivorServices(SurvivorServiceQuery(id, limit: 1_000)),
                    try tx.identity(survivorID: id)
                )
            }
            let record = try #require(head)
            #expect(record.services.isEmpty, "the record no longer holds its services")
            #expect(record.version == old.version, "moving is not a change of the survivor")
            #expect(record.serviceCount == UInt32(old.services.count))
            #expect(record.placements.map(\.id) == old.placements.map(\.id))
            #expect(record.placements.allSatisfy { $0.homeName.hasPrefix("Fictional Home") })
            #expect(record.consents == old.consents)
            #expect(identity?.legalName.hasPrefix("Fixture Person") == true, "the identity still opens")
            #expect(services.map(\.id) == old.services.map(\.id))
            #expect(services.map(\.sequence) == (0..<old.services.count).map { UInt32($0 + 1) })
            for (service, was) in zip(services, old.services) {
                var stripped = service
                stripped.detail = ""
                stripped.sequence = 0
                #expect(stripped == was, "\(service.id)")
                if !service.detail.isEmpty {
                    #expect(service.detail.hasPrefix("Fictional detail "), "sealed before, opened and sealed again")
                    details += 1
                }
            }
        }
        #expect(details == 28, "every sealed detail moved")
    }

    @Test(
        "the first open with the keys moves every survivor's services into rows, details sealed anew, facts and audit chain kept; opening again moves nothing"
    )
    func migrates() async throws {
        let directory = try self.copy()
        defer { directory.remove() }
        let path = directory.path("haven.sqlite")
        let before = try self.survivorsBefore(path)
        #expect(before.count == 6)
        #expect(before.values.reduce(0) { $0 + $1.services.count } == 34)

        let opened = try await OpenedRelease(directory)
        let store = opened.store
        defer { try? store.close() }
        try await self.expectMoved(store, before)

        // Reports by query give what a replay of every record and service gives.
        let stored = try await ReportFactTests.stored(in: store)
        #expect(stored.services.values.reduce(0) { $0 + $1.count } == 34)
        try await ReportFactTests.expectAgree(store, stored, seed: 12, offices: ["KOL", "MNL"])

        // Every row the move wrote is in the chain, and the chain verifies.
        try await opened.expectMoveAudited(["survivorService": 34, "survivor": 4])

        // A service recorded after the move continues where they ended.
        let (id, old) = try #require(before.max { $0.value.services.count < $1.value.services.count })
        try await store.audited { tx in
            guard var survivor = try tx.load(Haven_V1_Survivor.self, id: id) else {
                throw HavenError(code: .notFound, message: "the fixture's survivor is missing")
            }
            survivor.version += 1
            survivor.record(SurvivorServiceTests.service("svc_after_upgrade", 0, detail: "Fictional detail after"))
            try tx.update(survivor, expectedVersion: survivor.version - 1)
        }
        let tail = try await store.read {
            try $0.survivorServices(SurvivorServiceQuery(id, after: UInt32(old.services.count - 1), limit: 10))
        }
        #expect(tail.map(\.sequence) == [UInt32(old.services.count), UInt32(old.services.count + 1)])
        #expect(tail.last?.detail == "Fictional detail after")

        // No detail is plain in the file.
        try store.close()
        let checkpoint = try DatabaseQueue(path: path)
        try await checkpoint.writeWithoutTransaction { try $0.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        try checkpoint.close()
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).range(of: Data("Fictional detail".utf8)) == nil)

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
        let directory = try self.copy()
        defer { directory.remove() }
        let path = directory.path("haven.sqlite")
        let before = try self.survivorsBefore(path)
        let custodian = try KeyCustodian.load(masterKeyFile: directory.path("master.key"))
        let signer = try CheckpointSigner.loadOrCreate(
            at: directory.path("audit-signing.key"),
            development: custodian.development
        )
        let source = try SQLiteStore(path: path, keys: nil)
        defer { try? source.close() }
        let unmoved = try await source.read { tx in
            try tx.survivorServices(SurvivorServiceQuery(before.keys.sorted()[0], limit: 100))
        }
        #expect(unmoved.isEmpty, "without its keys the store leaves the services where they are")
        try await TestPostgres.withStore(keys: nil) { target, location in
            _ = try await target.copy(from: source, principalID: "test", atUnixMs: 9)
            try await PostgresStore.using(location, keys: custodian.keys) { moved in
                try await self.expectMoved(moved, before)
                let verdict = try await AuditVerifier(store: moved, publicKey: signer.publicKey).verify()
                #expect(verdict.intact, "\(verdict.problem)")
                let stored = try await ReportFactTests.stored(in: moved)
                try await ReportFactTests.expectAgree(moved, stored, seed: 13, offices: ["KOL", "MNL"])
            }
        }
    }
}
