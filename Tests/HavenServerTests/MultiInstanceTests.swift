import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import NIOCore
import SwiftProtobuf
import Testing
import X509

/// Two havend instances (two compositions, each with its own listener) on one
/// PostgreSQL database, as behind a TCP load balancer: the deployment's
/// SQLite database copied into PostgreSQL first (`haven-admin storage copy`).
@Suite(
    "Several havend instances on one PostgreSQL database",
    .serialized,
    .heavy,
    .enabled(if: TestPostgres.isEnabled, TestPostgres.skipped)
)
struct MultiInstanceTests {
    @Test(
        "a write through one instance is read through the other, a stale update through either is refused with the current version, a feed on one sees changes made through the other, a disabled account's connection and a revoked certificate's to the other end within a second, and the audit chain verifies"
    )
    func twoInstances() async throws {
        let deployment = try TestDeployment()
        let credentials = try Dictionary(
            uniqueKeysWithValues: ["admin", "worker-kol", "director-kol"].map {
                ($0, try deployment.credentials(for: $0))
            }
        )
        let (location, drop) = try await TestPostgres.freshDatabase()
        do {
            // The data directory's records, accounts and certificates, copied into PostgreSQL.
            let custodian = try KeyCustodian.load(masterKeyFile: deployment.dataDirectory.masterKeyFile)
            let source = try SQLiteStore(path: deployment.dataDirectory.databaseFile, keys: custodian.keys)
            let sourceSize = try await source.read { try $0.auditSize() }
            try source.close()
            let report = try await deployment.dataDirectory.copyDatabase(
                into: location,
                principalID: "test",
                atUnixMs: 2
            )
            #expect(report.rows["account"] == 7)
            #expect(report.rows["audit"] == Int(sourceSize))

            let a = try await deployment.start { $0.storage = location.url }
            let b = try await deployment.start { $0.storage = location.url }
            do {
                try await Self.exercise(a, b, credentials)
            } catch {
                try? await a.stop()
                try? await b.stop()
                throw error
            }
            try await a.stop()
            try await b.stop()
        } catch {
            await drop()
            throw error
        }
        await drop()
    }

    static func exercise(_ a: RunningServer, _ b: RunningServer, _ credentials: [String: TestCredentials]) async throws
    {
        var nextID: UInt64 = 0
        func id() -> UInt64 {
            nextID += 1
            return nextID
        }
        func connect(_ server: RunningServer, _ account: String) async throws -> RawConnection {
            let connection = try await RawConnection.connect(
                port: server.port,
                credentials: try #require(credentials[account])
            )
            try await connection.hello()
            return connection
        }
        let adminA = try await connect(a, "admin")
        let adminB = try await connect(b, "admin")
        let workerB = try await connect(b, "worker-kol")
        let directorA = try await connect(a, "director-kol")

        // Written through A, read and used through B.
        _ = try await adminA.unary(
            MethodCatalog.OfficeService.createOffice,
            ServiceTests.officeRequest("KOL"),
            id: id()
        )
        let opened = try await workerB.unary(MethodCatalog.CaseService.openCase, ServiceTests.openCase(), id: id())
        var get = Haven_V1_GetCaseRequest()
        get.caseID = opened.id
        let seen = try await directorA.unary(MethodCatalog.CaseService.getCase, get, id: id())
        #expect(seen.reference == opened.reference)

        // One update from version 1 through each instance: the second learns the current version.
        var rename = Haven_V1_UpdateOfficeRequest()
        rename.code = "KOL"
        rename.expectedVersion = 1
        rename.name = "Kolkata North"
        let renamed = try await adminA.unary(MethodCatalog.OfficeService.updateOffice, rename, id: id())
        #expect(renamed.version == 2)
        rename.name = "Lost update"
        let stale = try #require(
            try await adminB.call(MethodCatalog.OfficeService.updateOffice, rename, id: id()).error
        )
        #expect(stale.code == .failedPrecondition)
        #expect(stale.currentVersion == 2)

        // A feed followed on A sees a case opened through B.
        var follow = Haven_V1_SubscribeRequest()
        follow.start = .now
        follow.follow = true
        let feedID = id()
        try await directorA.send(.start(callID: feedID, method: MethodCatalog.FeedService.subscribe, request: follow))
        #expect(try await directorA.next()?.callID == feedID)  // caught up
        let later = try await workerB.unary(
            MethodCatalog.CaseService.openCase,
            ServiceTests.openCase(key: "later"),
            id: id()
        )
        let arrived = try #require(try await directorA.next())
        let item = try Haven_V1_FeedItem(decodingPayload: arrived.message.payload)
        #expect(item.change.caseRecord.id == later.id)

        // Disabled through A: the worker's open connection to B ends within a second (and a bit).
        var disable = Haven_V1_SetAccountEnabledRequest()
        disable.accountID = "worker-kol"
        disable.reason = "left the organisation (fictional)"
        _ = try await adminA.unary(MethodCatalog.AccountService.disableAccount, disable, id: id())
        let disabledAt = ContinuousClock.now
        // What arrives (a go-away) until the connection closes, or 3 s pass.
        while let _ = try? await workerB.next(timeout: .seconds(3)) {}
        let elapsed = ContinuousClock.now - disabledAt
        #expect(
            await workerB.closed(within: .seconds(1)),
            "the disabled account's connection to the other instance stayed open"
        )
        // Within a second, as SessionCutoffTests allows for two shared cores: three.
        #expect(elapsed < SessionCutoffTests.bound, "cut off after \(elapsed)")

        // Revoked through B: the director's open connection to A ends within the bound, and a new one is refused.
        var revoke = Haven_V1_RevokeCredentialRequest()
        revoke.serial = try Certificate(firstPEMIn: try #require(credentials["director-kol"]).certificatePEM).serialHex
        revoke.reason = "laptop lost (fictional)"
        _ = try await adminB.unary(MethodCatalog.AccountService.revokeCredential, revoke, id: id())
        let revokedAt = ContinuousClock.now
        let goAway = await CredentialTests.goAway(on: directorA)
        #expect(ContinuousClock.now - revokedAt < SessionCutoffTests.bound, "the other instance took too long")
        #expect(goAway?.message.contains("revoked") == true)
        #expect(
            try await CredentialTests.refusedAsRevoked(port: a.port, try #require(credentials["director-kol"])),
            "a certificate revoked through one instance opened a session on the other"
        )

        for connection in [adminA, adminB, workerB, directorA] { await connection.close() }
        let verdict = try await AuditVerifier(store: b.store, publicKey: Data()).verify()
        #expect(verdict.intact, "\(verdict.problem)")
    }
}
