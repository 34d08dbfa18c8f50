import Crypto
import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import Logging
import ServiceLifecycle
import SwiftProtobuf
import Testing

/// The audit trail as auditors, administrators and operators use it.
@Suite("Audit trail")
struct AuditServiceTests {
    @Test(
        "auditors search entries by principal, action, resource, outcome and time, page through them, and see no identity"
    )
    func search() async throws {
        let scenario = try await AccountabilityScenario()
        let canary = "AUDITCANARY"
        let survivor = try await scenario.survivor(canary, key: "a1")
        // An identity read, a plain read, and a refusal.
        _ = try await scenario.call(
            "worker-kol",
            MethodCatalog.SurvivorService.getSurvivor,
            .with {
                $0.survivorID = survivor.id
                $0.includeIdentity = true
            }
        )
        _ = try await scenario.call(
            "worker-kol",
            MethodCatalog.SurvivorService.getSurvivor,
            .with { $0.survivorID = survivor.id }
        )
        #expect(
            try await scenario.code("worker-kol", MethodCatalog.OfficeService.rotateKeys, .init()) == .permissionDenied
        )

        func list(
            _ build: (inout Haven_V1_ListAuditEntriesRequest) -> Void
        ) async throws -> Haven_V1_ListAuditEntriesResponse {
            var request = Haven_V1_ListAuditEntriesRequest()
            build(&request)
            return try await scenario.call("auditor", MethodCatalog.AuditService.listAuditEntries, request)
        }
        let reads = try await list {
            $0.principalID = "worker-kol"
            $0.action = "haven.v1.SurvivorService/GetSurvivor"
        }
        #expect(reads.entries.count == 1, "only the identity read is audited")
        #expect(reads.entries.first?.resources.first?.disclosed == "identity")
        #expect(reads.entries.first?.resources.first?.id == survivor.id)
        let refusals = try await list { $0.outcomes = [.permissionDenied] }
        #expect(refusals.entries.map(\.action) == ["haven.v1.OfficeService/RotateKeys"])
        #expect(refusals.entries.first?.principalRole == .caseworker)
        let about = try await list {
            $0.resourceKind = "survivor"
            $0.resourceID = survivor.id
        }
        #expect(about.entries.count == 4, "registered, placed, service recorded, identity read")
        let now = Int64(scenario.haven.now.timeIntervalSince1970 * 1000)
        #expect(try await list { $0.fromUnixMs = now + 1 }.entries.isEmpty)
        #expect(try await list { $0.toUnixMs = now + 1 }.entries.count == Int(about.chainSize))

        // Paging, both ways, covers the chain once.
        var seen: [UInt64] = []
        var token = ""
        repeat {
            let page = try await list {
                $0.page.pageSize = 3
                $0.page.pageToken = token
                $0.newestFirst = true
            }
            seen += page.entries.map(\.sequence)
            token = page.page.nextPageToken
        } while !token.isEmpty
        #expect(seen == Array((1...about.chainSize).reversed()))
        let tail = try await list { $0.afterSequence = about.chainSize - 2 }
        #expect(tail.entries.map(\.sequence) == [about.chainSize - 1, about.chainSize])

        // Nothing an auditor receives holds identity data.
        let everything = try await list { $0.page.pageSize = 500 }
        let bytes: Data = try everything.serializedBytes()
        #expect(bytes.range(of: Data(canary.utf8)) == nil)

        // Verification streams progress and ends with the verdict.
        let progress = try await scenario.haven.collect(
            MethodCatalog.AuditService.verifyAuditChain,
            .init(),
            as: try scenario.haven.principal("auditor")
        )
        #expect(progress.last?.verdict.intact == true)
        #expect(progress.last?.verdict.entries == everything.chainSize)
        #expect(progress.dropLast().allSatisfy { !$0.hasVerdict && $0.total == everything.chainSize })
    }

    @Test("key rotation re-wraps without downtime: identities still open, the old master key is gone")
    func rotation() async throws {
        let scenario = try await AccountabilityScenario()
        let survivor = try await scenario.survivor("ROTATE", key: "r1")
        let file = scenario.haven.directory.path("master.key")
        let before = try MasterKey.load(from: file).material.fingerprint
        let response = try await scenario.call(
            "admin",
            MethodCatalog.OfficeService.rotateKeys,
            .with { $0.officeCodes = ["KOL"] }
        )
        #expect(response.officesRotated == 1)
        #expect(response.recordKeysRewrapped >= 1)
        let after = try MasterKey.load(from: file).material.fingerprint
        #expect(after == response.masterKeyFingerprint)
        #expect(after != before)
        let read = try await scenario.call(
            "director-kol",
            MethodCatalog.SurvivorService.getSurvivor,
            .with {
                $0.survivorID = survivor.id
                $0.includeIdentity = true
            }
        )
        #expect(read.identity.legalName == "ROTATE-NAME")
        #expect(read.placements.first?.homeName == "ROTATE-HOME")
        // A store opened with the new file opens everything; with the old key, nothing.
        let reopened = try KeyCustodian.load(masterKeyFile: file)
        let store = try SQLiteStore(path: scenario.databasePath, keys: reopened.keys)
        #expect(try await store.read { try $0.identity(survivorID: survivor.id) }?.legalName == "ROTATE-NAME")
        let audit = try await scenario.haven.store.read { tx in
            var query = AuditQuery(limit: 10)
            query.action = "haven.v1.OfficeService/RotateKeys"
            return try tx.auditEntries(query)
        }
        #expect(audit.count == 1)
        #expect(audit.first?.resources.map(\.kind) == ["master_key", "office_key"])
    }

    @Test("an interrupted rotation is finished or discarded at the next start, as the database says")
    func interruptedRotation() async throws {
        let directory = try TemporaryDirectory("haven-rotation")
        defer { directory.remove() }
        let file = directory.path("master.key")
        let original = try MasterKey.generate(at: file, development: true)

        // Crash before the transaction: master.key.next exists, the database never used it.
        let custodian = try KeyCustodian.load(masterKeyFile: file)
        let store = try SQLiteStore(path: directory.path("haven.sqlite"), keys: custodian.keys)
        var survivor = Haven_V1_Survivor()
        survivor.id = "srv_1"
        survivor.code = "KOL-S-0001"
        survivor.officeCode = "KOL"
        survivor.version = 1
        try await store.audited { [survivor] tx in
            try tx.insert(survivor, identity: .with { $0.legalName = "Fictional" })
        }
        let unused = MasterKey(key: .init(size: .bits256), isDevelopmentKey: true)
        try unused.write(to: file + ".next")
        let restarted = try KeyCustodian.load(masterKeyFile: file)
        try await restarted.reconcile(store)
        #expect(!FileManager.default.fileExists(atPath: file + ".next"))
        #expect(try MasterKey.load(from: file).key == original.key, "the unused key was discarded, not installed")
        #expect(restarted.keys.fingerprints == [original.material.fingerprint])
        #expect(try await store.read { try $0.identity(survivorID: "srv_1") }?.legalName == "Fictional")

        // Crash after the commit, before the rename: the database names the new key.
        let next = MasterKey(key: .init(size: .bits256), isDevelopmentKey: true)
        try next.write(to: file + ".next")
        let during = try KeyCustodian.load(masterKeyFile: file)
        let rotating = try SQLiteStore(path: directory.path("haven.sqlite"), keys: during.keys)
        _ = try await rotating.audited { tx in try tx.rotateKeys(master: next.material, offices: ["KOL"]) }
        let afterCrash = try KeyCustodian.load(masterKeyFile: file)
        let reopened = try SQLiteStore(path: directory.path("haven.sqlite"), keys: afterCrash.keys)
        try await afterCrash.reconcile(reopened)
        #expect(try MasterKey.load(from: file).key == next.key)
        #expect(!FileManager.default.fileExists(atPath: file + ".next"))
        #expect(try await reopened.read { try $0.identity(survivorID: "srv_1") }?.legalName == "Fictional")

        // A database whose key is not there at all is refused with a clear message.
        try MasterKey(key: .init(size: .bits256), isDevelopmentKey: true).write(to: file)
        let wrong = try KeyCustodian.load(masterKeyFile: file)
        let refused = await #expect(throws: HavenError.self) {
            try await wrong.reconcile(try SQLiteStore(path: directory.path("haven.sqlite"), keys: wrong.keys))
        }
        #expect(refused?.message.contains("Restore the master key") == true)
    }

    @Test("the checkpoint service signs when the chain grew, and once more on graceful shutdown")
    func checkpoints() async throws {
        let scenario = try await AccountabilityScenario()
        let haven = scenario.haven
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let service = CheckpointService(
            signer: haven.environment.checkpoints,
            store: haven.store,
            interval: .seconds(3600),
            logger: logger,
            now: { Int64(Date().timeIntervalSince1970 * 1000) }
        )
        let group = ServiceGroup(configuration: .init(services: [service], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            // The first checkpoint comes at start.
            var first: Haven_V1_AuditCheckpoint?
            for _ in 0..<200 {
                first = try await haven.store.read { try $0.checkpoints(below: nil, limit: 1) }.first
                if first != nil { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(first?.size == (try await haven.store.read { try $0.auditSize() }))
            // More is written; shutdown signs a checkpoint covering it.
            _ = try await scenario.survivor("CHECKPOINT", key: "cp")
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        let last = try #require(try await haven.store.read { try $0.checkpoints(below: nil, limit: 1) }.first)
        #expect(last.size == (try await haven.store.read { try $0.auditSize() }))
        #expect(CheckpointSigner.isSigned(last))
        #expect(last.publicKey == haven.environment.checkpoints.publicKey)
    }
}
