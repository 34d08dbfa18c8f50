import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import SwiftProtobuf
import Testing

/// A survivor's services as rows of their own: recording one writes the
/// service, not the survivor; reads carry the latest; `ListSurvivorServices`
/// pages through all of them; writes and feed items carry what they recorded.
@Suite("Survivor services as rows")
struct SurvivorServiceTests {
    static func service(_ id: String, _ sequence: UInt32, detail: String = "") -> Haven_V1_ServiceRecord {
        var service = Haven_V1_ServiceRecord()
        service.id = id
        service.kind = .counselling
        service.detail = detail
        service.deliveredOn = AccountabilityScenario.date(2026, 3, Int32(1 + sequence % 28))
        service.sequence = sequence
        return service
    }

    static func survivor(_ id: String) -> Haven_V1_Survivor {
        var survivor = Haven_V1_Survivor()
        survivor.id = id
        survivor.code = "KOL-S-\(id)"
        survivor.officeCode = "KOL"
        survivor.version = 1
        survivor.intakeOn = AccountabilityScenario.date(2026, 1, 2)
        survivor.createdAtUnixMs = 1
        survivor.updatedAtUnixMs = 1
        return survivor
    }

    @Test(
        "the store keeps services in sequence, beside a survivor record that does not grow, and refuses a gap",
        arguments: StoreUnderTest.allCases
    )
    func store(_ kind: StoreUnderTest) async throws {
        try await kind.withStore { store in
            var survivor = Self.survivor("srv_1")
            try await store.audited { [survivor] tx in try tx.insert(survivor) }
            let empty = try #require(try await store.read { try $0.load(Haven_V1_Survivor.self, id: "srv_1") })
            for sequence in UInt32(1)...3 {
                let expected = survivor.version
                survivor.version += 1
                survivor.record(Self.service("svc_\(sequence)", 0, detail: "Fictional detail \(sequence)"))
                #expect(survivor.services.map(\.sequence) == [sequence] && survivor.serviceCount == sequence)
                try await store.audited { [survivor] tx in try tx.update(survivor, expectedVersion: expected) }
                survivor.services = []
            }
            let stored = try #require(try await store.read { try $0.load(Haven_V1_Survivor.self, id: "srv_1") })
            #expect(stored.services.isEmpty, "the record holds its count, not its services")
            #expect(stored.serviceCount == 3)
            var grown = stored
            grown.version = empty.version
            grown.serviceCount = 0
            grown.updatedAtUnixMs = empty.updatedAtUnixMs
            #expect(grown == empty, "the record is what it was, but for its version and count")

            let all = try await store.read { try $0.survivorServices(SurvivorServiceQuery("srv_1", limit: 10)) }
            #expect(all.map(\.id) == ["svc_1", "svc_2", "svc_3"])
            #expect(all.map(\.sequence) == [1, 2, 3])
            #expect(all.map(\.detail) == ["Fictional detail 1", "Fictional detail 2", "Fictional detail 3"])
            let after = try await store.read {
                try $0.survivorServices(SurvivorServiceQuery("srv_1", after: 1, limit: 10))
            }
            #expect(after.map(\.sequence) == [2, 3])
            var query = SurvivorServiceQuery("srv_1", limit: 2)
            query.newestFirst = true
            let latest = query
            let newest = try await store.read { tx in try tx.survivorServices(latest) }
            #expect(newest.map(\.sequence) == [3, 2])

            // A service out of sequence, or a count that disagrees, is refused and writes nothing.
            var gap = stored
            gap.version += 1
            gap.serviceCount = 5
            gap.services = [Self.service("svc_5", 5)]
            let refused = await #expect(throws: HavenError.self) {
                try await store.audited { [gap] tx in try tx.update(gap, expectedVersion: stored.version) }
            }
            #expect(refused?.code == .internal)
            var miscounted = stored
            miscounted.version += 1
            miscounted.services = [Self.service("svc_4", 4)]
            await #expect(throws: HavenError.self) {
                try await store.audited { [miscounted] tx in try tx.update(miscounted, expectedVersion: stored.version)
                }
            }
            #expect(
                try await store.read { try $0.survivorServices(SurvivorServiceQuery("srv_1", limit: 10)) }.count == 3
            )
            #expect(
                try await store.read { try $0.load(Haven_V1_Survivor.self, id: "srv_1") }?.version == stored.version
            )

            // Each row is in the audit chain, which verifies.
            let entries = try await store.read { try $0.auditEntries(AuditQuery(limit: 100)) }
            let covered = Set(entries.flatMap(\.resources).map { "\($0.kind)/\($0.id)" })
            #expect(
                covered.isSuperset(of: [
                    "survivorService/srv_1/1", "survivorService/srv_1/2", "survivorService/srv_1/3",
                ])
            )
            let verdict = try await AuditVerifier(store: store, publicKey: Data()).verify()
            #expect(verdict.intact, "\(verdict.problem)")
        }
    }

    @Test(
        "RecordService answers with the service it recorded; reads carry the latest 100; ListSurvivorServices pages through all; the feed carries each service once"
    )
    func service() async throws {
        let scenario = try await AccountabilityScenario()
        var survivor = try await scenario.survivor("SVC", key: "svc-1")
        #expect(survivor.services.count == 1 && survivor.serviceCount == 1 && survivor.services[0].sequence == 1)
        #expect(survivor.services[0].detail == "SVC-DETAIL")
        for number in 2...130 {
            var record = Haven_V1_RecordServiceRequest()
            record.survivorID = survivor.id
            record.service.kind = number % 2 == 0 ? .counselling : .schooling
            record.service.deliveredOn = AccountabilityScenario.date(2026, 3, Int32(1 + number % 28))
            record.service.detail = "Fictional session \(number)"
            record.idempotencyKey = "svc-\(number)"
            survivor = try await scenario.call("worker-kol", MethodCatalog.SurvivorService.recordService, record)
            #expect(survivor.services.map(\.sequence) == [UInt32(number)], "a write carries what it recorded")
            #expect(survivor.serviceCount == UInt32(number))
        }
        // A replayed record answers as a read does now.
        var again = Haven_V1_RecordServiceRequest()
        again.survivorID = survivor.id
        again.service.kind = .schooling
        again.service.deliveredOn = AccountabilityScenario.date(2026, 3, Int32(1 + 129 % 28))
        again.service.detail = "Fictional session 129"
        again.idempotencyKey = "svc-129"
        let replayed = try await scenario.call("worker-kol", MethodCatalog.SurvivorService.recordService, again)
        #expect(replayed.serviceCount == 130 && replayed.services.count == 100)

        // A read: the latest 100, oldest first.
        let read = try await scenario.call(
            "worker-kol",
            MethodCatalog.SurvivorService.getSurvivor,
            .with { $0.survivorID = survivor.id }
        )
        #expect(read.serviceCount == 130)
        #expect(read.services.map(\.sequence) == Array(31...130))
        #expect(read.services.last?.detail == "Fictional session 130")
        let listed = try await scenario.call("worker-kol", MethodCatalog.SurvivorService.listSurvivors, .init())
        #expect(listed.survivors.first { $0.id == survivor.id }?.services.map(\.sequence) == Array(31...130))

        // Paging: every service once, in order.
        var pages: [[UInt32]] = []
        var request = Haven_V1_ListSurvivorServicesRequest()
        request.survivorID = survivor.id
        request.page.pageSize = 50
        repeat {
            let page = try await scenario.call(
                "worker-kol",
                MethodCatalog.SurvivorService.listSurvivorServices,
                request
            )
            #expect(page.serviceCount == 130)
            pages.append(page.services.map(\.sequence))
            request.page.pageToken = page.page.nextPageToken
        } while !request.page.pageToken.isEmpty
        #expect(pages.map(\.count) == [50, 50, 30])
        #expect(pages.flatMap { $0 } == Array(1...130))
        var tail = Haven_V1_ListSurvivorServicesRequest()
        tail.survivorID = survivor.id
        tail.afterSequence = 127
        let last = try await scenario.call("worker-kol", MethodCatalog.SurvivorService.listSurvivorServices, tail)
        #expect(last.services.map(\.sequence) == [128, 129, 130])
        #expect(last.services[0].detail == "Fictional session 128")

        // Who may not see the survivor learns nothing, whether it exists or not.
        var missing = Haven_V1_ListSurvivorServicesRequest()
        missing.survivorID = "srv_missing"
        #expect(
            try await scenario.code("worker-kol", MethodCatalog.SurvivorService.listSurvivorServices, missing)
                == .notFound
        )
        #expect(
            try await scenario.code("auditor", MethodCatalog.SurvivorService.listSurvivorServices, tail) == .notFound
        )
        #expect(try await scenario.code("admin", MethodCatalog.SurvivorService.listSurvivorServices, tail) == .notFound)

        // The feed, replayed: each service in the item of the change that recorded it, once.
        let changes = try await scenario.haven.replayedChanges(as: try scenario.haven.principal("director-kol"))
        let snapshots = changes.compactMap { change -> Haven_V1_Survivor? in
            guard case .survivor(let snapshot) = change.subject, snapshot.id == survivor.id else { return nil }
            return snapshot
        }
        #expect(snapshots.flatMap(\.services).map(\.sequence) == Array(1...130))
        #expect(snapshots.allSatisfy { $0.services.count <= 1 })
        #expect(snapshots.last?.serviceCount == 130)

        // Each service's row is in the audit entry of its call, and the chain verifies.
        let entries = try await scenario.entries(kind: "survivorService", id: "\(survivor.id)/130")
        #expect(entries.count == 1 && entries.first?.action == "haven.v1.SurvivorService/RecordService")
        let verdict = try await scenario.verify(scenario.haven.directory.path("haven.sqlite"))
        #expect(verdict.intact, "\(verdict.problem)")
    }
}
