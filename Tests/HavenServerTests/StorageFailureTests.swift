import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import Logging
import SwiftProtobuf
import Testing

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
