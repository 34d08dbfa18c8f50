import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import Logging
import NIOCore
import SwiftProtobuf
import Synchronization
import Testing
import X509

/// What clients and operators see when the database cannot be written: a
/// status that says whether retrying helps, no internal detail on the wire,
/// one log line per kind of failure, and recovery without a restart.
@Suite("Storage failures")
struct StorageFailureTests {
    @Test(
        "a full database: RESOURCE_EXHAUSTED without SQLite's text, logged once with the detail, nothing acknowledged lost, recovered when space returns"
    )
    func fullDisk() async throws {
        let deployment = try TestDeployment()
        let capture = LogCapture()
        let server = try await deployment.start(logger: capture.logger(level: .warning))
        let began = ContinuousClock.now
        do {
            let admin = try await RawConnection.connect(
                port: server.port,
                credentials: try deployment.credentials(for: "admin")
            )
            try #require(try await admin.hello() != nil)
            _ = try await admin.unary(
                MethodCatalog.OfficeService.createOffice,
                ServiceTests.officeRequest("KOL"),
                id: 1
            )
            let worker = try await RawConnection.connect(
                port: server.port,
                credentials: try deployment.credentials(for: "worker-kol")
            )
            try #require(try await worker.hello() != nil)

            try server.sqlite.limitPages(0)  // no page beyond what the file holds now
            var acknowledged: [String] = []
            var refusals: [Haven_V1_CallEnd] = []
            for id in 1...60 {
                let end = try await worker.call(
                    MethodCatalog.CaseService.openCase,
                    ServiceTests.openCase(),
                    id: UInt64(id)
                )
                if end.statusCode == .ok {
                    acknowledged.append(try Haven_V1_Case(decodingPayload: end.payload).id)
                } else {
                    refusals.append(end)
                }
            }
            try #require(refusals.count >= 10, "the capped database filled up")
            for end in refusals {
                #expect(end.statusCode == .resourceExhausted)
                #expect(end.message.contains("storage is full"))
                #expect(!end.message.contains("SQLite") && !end.message.contains("13"), "\(end.message)")
                #expect(end.error?.retryAfterMs == nil, "no RetryInfo: retrying cannot help until an operator acts")
            }
            let lines = capture.all.filter { $0.contains("storage failure") }
            // One line per kind every 10 s: one for the burst, unless a loaded machine stretched it past 10 s.
            let windows = Int((ContinuousClock.now - began) / .seconds(10)) + 1
            #expect(lines.count >= 1 && lines.count <= windows, "one line for the whole burst: \(lines)")
            #expect(lines.first?.contains("storage full") == true, "the operator sees the cause: \(lines)")
            #expect(lines.first?.contains("database or disk is full") == true, "with SQLite's own words")

            // Space returns: the next write succeeds, no restart, and every acknowledged write is there.
            try server.sqlite.limitPages(nil)
            let after = try await worker.call(MethodCatalog.CaseService.openCase, ServiceTests.openCase(), id: 100)
            #expect(after.statusCode == .ok)
            let listed = try await worker.unary(
                MethodCatalog.CaseService.listCases,
                .with { $0.page.pageSize = 500 },
                id: 101
            )
            #expect(Set(acknowledged).isSubset(of: Set(listed.cases.map(\.id))))
            #expect(listed.cases.count == acknowledged.count + 1, "nothing refused was half-written")
        } catch {
            try? await server.stop()
            throw error
        }
        try await server.stop()
    }

    @Test("the log throttle: one line per kind per interval, then how many were held back")
    func throttle() {
        let log = RateLimitedLog(interval: .seconds(10))
        let start = ContinuousClock.now
        #expect(log.admit("a", now: start) == (true, 0))
        #expect(log.admit("a", now: start + .seconds(1)) == (false, 0))
        #expect(log.admit("b", now: start + .seconds(1)) == (true, 0), "kinds are counted apart")
        #expect(log.admit("a", now: start + .seconds(2)) == (false, 0))
        #expect(log.admit("a", now: start + .seconds(11)) == (true, 2), "the next line says two were held back")
    }
}

/// A store whose reads fail while `failing` is set, as the SQLite store reports a busy database.
final class FailingReadStore: RecordStore {
    let base: any RecordStore
    let failing = Mutex(false)

    init(_ base: any RecordStore) { self.base = base }

    func read<T: Sendable>(_ body: @escaping @Sendable (any StoreReader) throws -> T) async throws -> T {
        if self.failing.withLock({ $0 }) {
            throw HavenError(code: .unavailable, message: "storage busy: retry shortly")
        }
        return try await self.base.read(body)
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (any StoreWriter) throws -> T) async throws -> T {
        try await self.base.write(body)
    }

    func latestChangeSequence() async throws -> UInt64 { try await self.base.latestChangeSequence() }

    func changeNotifications() -> AsyncStream<UInt64> { self.base.changeNotifications() }
}

@Suite("Storage failures while authenticating")
struct AuthenticationStorageFailureTests {
    @Test(
        "accounts unreadable when a client connects: GoAway UNAVAILABLE (retry shortly), counted and logged once, no refusal audited; the same certificate is served once the store reads again"
    )
    func unreadableAccounts() async throws {
        let haven = try InProcessHaven(accounts: AccessGrid.staffAccounts)
        let store = FailingReadStore(haven.store)
        let deployment = try TestDeployment()
        let credentials = try deployment.credentials(for: "worker-kol", register: false)
        let bound = StoredCredential(
            try Certificate(firstPEMIn: credentials.certificatePEM),
            accountID: "worker-kol",
            issuedBy: "enrolment",
            now: Date()
        )
        try await haven.store.audited { tx in try tx.saveCredential(bound) }
        var configuration = ServerConfiguration()
        configuration.listenPort = 0
        configuration.shutdownGrace = .milliseconds(200)
        let log = LogCapture()
        let statistics = ServerStatistics()
        let server = try TLSServer(
            configuration: configuration,
            tls: try TLSMaterial(dataDirectory: deployment.dataDirectory),
            store: store,
            router: haven.router,
            logger: log.logger(label: "haven-auth-failure", level: .warning),
            statistics: statistics
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            // Whatever the checks find, the server stops (a failure must not leave the group waiting).
            do {
                try await Self.check(server, store, haven, credentials, log, statistics)
            } catch {
                Issue.record(error)
            }
            server.initiateShutdown()
            try await group.waitForAll()
        }
    }

    static func check(
        _ server: TLSServer,
        _ store: FailingReadStore,
        _ haven: InProcessHaven,
        _ credentials: TestCredentials,
        _ log: LogCapture,
        _ statistics: ServerStatistics
    ) async throws {
        let port = try #require(try await server.listeningAddress.port)
        let auditBefore = try await haven.store.read { tx in try tx.auditSize() }

        store.failing.withLock { $0 = true }
        for _ in 1...3 {
            let refused = try await RawConnection.connect(port: port, credentials: credentials)
            // The server answers right after the handshake, hello or not (sending one could race its close).
            let answer = try await refused.next()
            await refused.close()
            guard case .goAway(let away) = answer?.kind else {
                Issue.record("no go-away while the store cannot be read: \(String(describing: answer))")
                return
            }
            #expect(away.reason.code == .unavailable)
            #expect(away.message.contains("retry shortly"), "\(away.message)")
        }
        let warnings = log.all.filter { $0.contains("the store could not be read to authenticate it") }
        #expect(warnings.count == 1, "logged once for the three: \(log.all)")

        store.failing.withLock { $0 = false }
        let served = try await RawConnection.connect(port: port, credentials: credentials)
        let hello = try await served.hello()
        guard case .hello = hello?.kind else {
            await served.close()
            Issue.record("not served once the store reads again: \(String(describing: hello))")
            return
        }
        let me = try await served.unary(MethodCatalog.SessionService.whoAmI, .init(), id: 1)
        #expect(me.id == "worker-kol")
        await served.close()
        // A failure to read is not a decision about the certificate: no refusal is audited for it.
        let auditAfter = try await haven.store.read { tx in try tx.auditSize() }
        #expect(auditAfter == auditBefore)
        #expect(statistics.refusals.connectionsRefused == 3)
    }
}
