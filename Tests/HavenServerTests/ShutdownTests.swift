import Foundation
import HavenProtocol
import HavenServer
import HavenTestSupport
import NIOCore
import Testing

/// Shutdown does not wait on peers: common supervisors stop a service after
/// 10 seconds, so havend must be gone well before that whatever its clients do.
@Suite("Shutdown", .serialized, .timed)
struct ShutdownTests {
    @Test("peers that never read (and so never answer close_notify) do not hold the shutdown")
    func silentPeers() async throws {
        let deployment = try TestDeployment()
        let server = try await deployment.start()
        var connections: [RawConnection] = []
        for account in ["worker-kol", "director-kol", "admin"] {
            let connection = try await RawConnection.connect(
                port: server.port,
                credentials: try deployment.credentials(for: account)
            )
            try #require(try await connection.hello() != nil)
            try await connection.stopReading()
            connections.append(connection)
        }
        let started = ContinuousClock.now
        try await server.stop()
        let took = ContinuousClock.now - started
        // The grace period in tests is 200 ms; TLS used to wait 5 s per peer for its close_notify
        // (15 s for these three). Under a loaded full run the stop itself has taken 3.8 s.
        #expect(took < .seconds(5), "stopped in \(took)")
        for connection in connections { await connection.close() }
    }

    /// Rounds of the flood: one in the suite; `HAVEN_LONG=1` runs twenty (the hang it guards against was intermittent).
    static let floodRounds = ProcessInfo.processInfo.environment["HAVEN_LONG"] == nil ? 1 : 20

    @Test("a peer that floods pings and never reads its pongs does not hold the shutdown", arguments: 1...floodRounds)
    func floodingPeer(round: Int) async throws {
        let deployment = try TestDeployment()
        let server = try await deployment.start()
        let connection = try await RawConnection.connect(
            port: server.port,
            credentials: try deployment.credentials(for: "worker-kol")
        )
        try #require(try await connection.hello() != nil)
        try await connection.stopReading()
        let ping = Array(try FrameEncoder().encode(Haven_V1_ClientEnvelope.ping(UInt64(round))).readableBytesView)
        let batch = [UInt8]((0..<2_000).map { _ in ping }.joined())
        for _ in 0..<10 { try await connection.sendRaw(batch) }  // 20,000 pings, no pong read
        let started = ContinuousClock.now
        try await server.stop()
        #expect(ContinuousClock.now - started < .seconds(5))
        await connection.close()
    }

    @Test("a peer that stops reading its replies is disconnected after write_stall_timeout_ms; others go on")
    func stalledPeer() async throws {
        let deployment = try TestDeployment()
        let server = try await deployment.start { $0.writeStallTimeout = .milliseconds(300) }
        do {
            let admin = try await RawConnection.connect(
                port: server.port,
                credentials: try deployment.credentials(for: "admin")
            )
            try #require(try await admin.hello() != nil)
            let greedy = try await RawConnection.connect(
                port: server.port,
                credentials: try deployment.credentials(for: "worker-kol"),
                receiveBufferBytes: 4096
            )
            try #require(try await greedy.hello() != nil)
            try await greedy.stopReading()
            let ping = Array(try FrameEncoder().encode(Haven_V1_ClientEnvelope.ping(9)).readableBytesView)
            let batch = [UInt8]((0..<2_000).map { _ in ping }.joined())
            // 100,000 pings: more pongs (~3 MB with TLS) than a 4 KiB window and the kernel buffers hold.
            for _ in 0..<50 { try await greedy.sendRaw(batch) }
            // Wait for the server's decision, not for a time: at most 10 s.
            var status = Haven_V1_ServerStatus()
            for id in 1...500 {
                status = try await admin.unary(MethodCatalog.OperationsService.getServerStatus, .init(), id: UInt64(id))
                if status.writeStalls == 1 && status.connections == 1 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(status.writeStalls == 1, "the reader that never reads was closed")
            #expect(status.connections == 1, "the admin's connection is still served")
            await greedy.close()
        } catch {
            try? await server.stop()
            throw error
        }
        try await server.stop()
    }
}
