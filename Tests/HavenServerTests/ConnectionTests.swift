import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import NIOCore
import NIOPosix
import SwiftProtobuf
import Testing

/// The connection layer over real TLS sockets on loopback.
@Suite("Connections over TLS")
struct ConnectionTests {
    func withServer(
        _ configuration: ServerConfiguration = ServerConfiguration(),
        _ body: (TestDeployment, RunningServer) async throws -> Void
    ) async throws {
        let deployment = try TestDeployment()
        let server = try await deployment.start { settings in
            let grace = settings.shutdownGrace
            settings = configuration
            settings.listenPort = 0
            if configuration.shutdownGrace == ServerConfiguration().shutdownGrace { settings.shutdownGrace = grace }
        }
        do {
            try await body(deployment, server)
        } catch {
            try? await server.stop()
            throw error
        }
        try await server.stop()
    }

    func connect(
        _ deployment: TestDeployment,
        _ server: RunningServer,
        as account: String = "worker-kol"
    ) async throws
        -> RawConnection
    {
        try await RawConnection.connect(port: server.port, credentials: try deployment.credentials(for: account))
    }

    @Test("answers hello with the version and limits, and WhoAmI with the certificate's account")
    func helloAndWhoAmI() async throws {
        try await self.withServer { deployment, server in
            let connection = try await self.connect(deployment, server)
            let hello = try #require(try await connection.hello())
            #expect(hello.callID == 0)
            #expect(hello.hello.protocolVersion == 1)
            #expect(hello.hello.serverAgent.hasPrefix("havend/"))
            #expect(hello.hello.limits.maxFrameBytes == 4 << 20)
            #expect(hello.hello.limits.maxConcurrentCalls == 100)
            let me = try await connection.unary(MethodCatalog.SessionService.whoAmI, .init(), id: 1)
            #expect(me.id == "worker-kol")
            #expect(me.role == .caseworker)
            #expect(me.officeCodes == ["KOL"])
            #expect(me.certificateExpiresAtUnixMs > Int64(Date().timeIntervalSince1970 * 1000))
            try await connection.send(.ping(77))
            #expect(try await connection.next()?.pong.opaque == 77)
            await connection.close()
        }
    }

    @Test("answers an unknown method with UNIMPLEMENTED and a bad request with INVALID_ARGUMENT, and keeps serving")
    func callErrorsDoNotKillTheConnection() async throws {
        try await self.withServer { deployment, server in
            let connection = try await self.connect(deployment, server)
            try await connection.hello()
            var unknown = Haven_V1_ClientEnvelope()
            unknown.callID = 1
            unknown.start.method = "haven.v1.CaseService/DeleteCase"
            try await connection.send(unknown)
            let end = try await connection.end(of: 1)
            #expect(end.statusCode == .unimplemented)
            #expect(end.message.contains("DeleteCase"))

            var garbage = Haven_V1_ClientEnvelope()
            garbage.callID = 2
            garbage.start.method = MethodCatalog.OfficeService.getOffice.fullName
            garbage.start.payload = Data([0x0A, 0x64, 0x41])  // a string claiming 100 bytes, with 1
            try await connection.send(garbage)
            let bad = try await connection.end(of: 2)
            #expect(bad.statusCode == .invalidArgument)
            #expect(bad.message.contains("undecodable haven.v1.GetOfficeRequest"))

            let me = try await connection.unary(MethodCatalog.SessionService.whoAmI, .init(), id: 3)
            #expect(me.id == "worker-kol")
        }
    }

    /// Sends `bytes` after hello and expects a go-away with `code`, then the close.
    func expectGoAway(
        _ code: StatusCode,
        after bytes: [UInt8],
        hello: Bool = true,
        containing text: String
    ) async throws {
        try await self.withServer { deployment, server in
            let connection = try await self.connect(deployment, server)
            let bystander = try await self.connect(deployment, server, as: "director-kol")
            try await bystander.hello()
            if hello { try await connection.hello() }
            try await connection.sendRaw(bytes)
            let away = try #require(try await connection.next())
            #expect(away.callID == 0)
            #expect(StatusCode(wire: away.goAway.code) == code)
            #expect(away.goAway.message.contains(text), "\(away.goAway.message)")
            #expect(await connection.closed())
            // Other connections are not disturbed.
            let me = try await bystander.unary(MethodCatalog.SessionService.whoAmI, .init(), id: 1)
            #expect(me.id == "director-kol")
        }
    }

    @Test("refuses a declared length of 0xFFFFFFFF from the header alone, with RESOURCE_EXHAUSTED")
    func hugeFrame() async throws {
        try await self.expectGoAway(
            .resourceExhausted,
            after: [0, 0xFF, 0xFF, 0xFF, 0xFF],
            containing: "exceeds the limit"
        )
    }

    @Test("refuses a frame one byte over the limit")
    func justOverLimit() async throws {
        let length = UInt32(4 << 20) + 1
        let header: [UInt8] = [0] + withUnsafeBytes(of: length.bigEndian, Array.init)
        try await self.expectGoAway(.resourceExhausted, after: header, containing: "4194305 bytes")
    }

    @Test("refuses reserved flags and the compressed flag")
    func flags() async throws {
        try await self.expectGoAway(.invalidArgument, after: [0x80, 0, 0, 0, 0], containing: "reserved")
        try await self.expectGoAway(.invalidArgument, after: [0x01, 0, 0, 0, 0], containing: "compressed")
    }

    @Test("closes on an undecodable envelope, with INVALID_ARGUMENT")
    func undecodableEnvelope() async throws {
        try await self.expectGoAway(
            .invalidArgument,
            after: [0, 0, 0, 0, 2, 0x0A, 0x05],
            containing: "undecodable envelope"
        )
    }

    @Test("requires hello first")
    func helloFirst() async throws {
        let start = try FrameEncoder().encode(
            try Haven_V1_ClientEnvelope.start(callID: 1, method: MethodCatalog.SessionService.whoAmI, request: .init())
        )
        try await self.expectGoAway(
            .invalidArgument,
            after: Array(start.readableBytesView),
            hello: false,
            containing: "before hello"
        )
    }

    @Test(
        "anything but hello as the first frame violates the protocol",
        arguments: [
            Haven_V1_ClientEnvelope.ping(7), .cancel(callID: 1), .credit(callID: 1, messages: 4),
        ]
    )
    func nothingBeforeHello(first: Haven_V1_ClientEnvelope) async throws {
        let frame = try FrameEncoder().encode(first)
        try await self.expectGoAway(
            .invalidArgument,
            after: Array(frame.readableBytesView),
            hello: false,
            containing: "before hello"
        )
    }

    @Test("refuses a client with no shared protocol version")
    func versionMismatch() async throws {
        try await self.withServer { deployment, server in
            let connection = try await self.connect(deployment, server)
            let away = try #require(try await connection.hello(versions: [7, 8]))
            #expect(StatusCode(wire: away.goAway.code) == .failedPrecondition)
            #expect(away.goAway.message.contains("no shared protocol version"))
            #expect(await connection.closed())
        }
    }

    @Test("refuses call ids that do not increase")
    func callIDsIncrease() async throws {
        try await self.withServer { deployment, server in
            let connection = try await self.connect(deployment, server)
            try await connection.hello()
            _ = try await connection.unary(MethodCatalog.SessionService.whoAmI, .init(), id: 5)
            try await connection.send(.start(callID: 5, method: MethodCatalog.SessionService.whoAmI, request: .init()))
            let away = try #require(try await connection.next())
            #expect(StatusCode(wire: away.goAway.code) == .invalidArgument)
            #expect(away.goAway.lastCallID == 5)
            #expect(await connection.closed())
        }
    }

    static func follow() -> Haven_V1_SubscribeRequest {
        var request = Haven_V1_SubscribeRequest()
        request.start = .now
        request.follow = true
        return request
    }

    @Test("caps calls in flight per connection with RESOURCE_EXHAUSTED, and frees the slot when a call ends")
    func concurrencyCap() async throws {
        var configuration = ServerConfiguration()
        configuration.maxConcurrentCalls = 2
        try await self.withServer(configuration) { deployment, server in
            let connection = try await self.connect(deployment, server)
            try await connection.hello()
            for id: UInt64 in [1, 2] {
                try await connection.send(
                    .start(callID: id, method: MethodCatalog.FeedService.subscribe, request: Self.follow())
                )
            }
            let third = try await connection.call(MethodCatalog.SessionService.whoAmI, .init(), id: 3)
            #expect(third.statusCode == .resourceExhausted)
            #expect(third.error?.retryAfterMs == 100, "a RetryInfo says when to try again")
            try await connection.send(.cancel(callID: 1))
            #expect(try await connection.end(of: 1).statusCode == .cancelled)
            let fourth = try await connection.call(MethodCatalog.SessionService.whoAmI, .init(), id: 4)
            #expect(fourth.statusCode == .ok)
        }
    }

    @Test("ends a call that runs past its deadline with DEADLINE_EXCEEDED")
    func deadline() async throws {
        try await self.withServer { deployment, server in
            let connection = try await self.connect(deployment, server)
            try await connection.hello()
            let started = ContinuousClock.now
            let end = try await connection.call(
                MethodCatalog.FeedService.subscribe,
                Self.follow(),
                id: 1,
                timeout: .milliseconds(300)
            )
            #expect(end.statusCode == .deadlineExceeded)
            #expect(ContinuousClock.now - started >= .milliseconds(300))
        }
    }

    @Test("stops a cancelled stream: CANCELLED, then nothing more for it")
    func cancellation() async throws {
        try await self.withServer { deployment, server in
            let connection = try await self.connect(deployment, server)
            try await connection.hello()
            try await connection.send(
                .start(callID: 1, method: MethodCatalog.FeedService.subscribe, request: Self.follow())
            )
            #expect(try await connection.next()?.message.payload.isEmpty == false)  // caught up
            try await connection.send(.cancel(callID: 1))
            #expect(try await connection.end(of: 1).statusCode == .cancelled)
            // Changes after the cancel are not streamed to the cancelled call.
            let admin = try await self.connect(deployment, server, as: "admin")
            try await admin.hello()
            _ = try await admin.unary(
                MethodCatalog.OfficeService.createOffice,
                ServiceTests.officeRequest("KOL"),
                id: 1
            )
            let me = try await connection.unary(MethodCatalog.SessionService.whoAmI, .init(), id: 2)
            #expect(me.id == "worker-kol")
        }
    }

    @Test("cuts off a peer that trickles a frame slower than the frame timeout")
    func slowFrame() async throws {
        var configuration = ServerConfiguration()
        configuration.frameTimeout = .milliseconds(300)
        try await self.withServer(configuration) { deployment, server in
            let connection = try await self.connect(deployment, server)
            try await connection.hello()
            try await connection.sendRaw([0, 0, 0, 0, 10, 0x08])
            let started = ContinuousClock.now
            let away = try #require(try await connection.next())
            #expect(StatusCode(wire: away.goAway.code) == .deadlineExceeded)
            #expect(away.goAway.message.contains("frame not completed"))
            // The server's clock started before ours did, so allow for that under load.
            #expect(ContinuousClock.now - started >= .milliseconds(100))
            #expect(await connection.closed())
        }
    }

    @Test("closes a connection that never sends hello")
    func helloTimeout() async throws {
        var configuration = ServerConfiguration()
        configuration.handshakeTimeout = .milliseconds(300)
        try await self.withServer(configuration) { deployment, server in
            let connection = try await self.connect(deployment, server)
            let away = try #require(try await connection.next())
            #expect(StatusCode(wire: away.goAway.code) == .deadlineExceeded)
            #expect(await connection.closed())
        }
    }

    @Test("closes a TCP connection that never starts TLS")
    func handshakeTimeout() async throws {
        var configuration = ServerConfiguration()
        configuration.handshakeTimeout = .milliseconds(300)
        try await self.withServer(configuration) { _, server in
            // Started before the connection exists: the server's timer starts at its accept, later.
            let started = ContinuousClock.now
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: server.port).get()
            try await channel.closeFuture.get()
            #expect(ContinuousClock.now - started >= .milliseconds(290), "not closed before the handshake timeout")
        }
    }

    @Test("closes an idle connection with UNAVAILABLE")
    func idle() async throws {
        var configuration = ServerConfiguration()
        configuration.idleTimeout = .milliseconds(300)
        try await self.withServer(configuration) { deployment, server in
            let connection = try await self.connect(deployment, server)
            try await connection.hello()
            let away = try #require(try await connection.next())
            #expect(StatusCode(wire: away.goAway.code) == .unavailable)
            #expect(away.goAway.message.contains("idle"))
            #expect(await connection.closed())
        }
    }

    @Test("refuses a disabled account and an unknown one, although their certificates are valid")
    func accounts() async throws {
        try await self.withServer { deployment, server in
            for account in ["disabled", "nobody"] {
                let connection = try await self.connect(deployment, server, as: account)
                let away = try #require(try await connection.next())
                #expect(StatusCode(wire: away.goAway.code) == .unauthenticated)
                #expect(await connection.closed())
            }
            // Each refusal is an audit entry naming the certificate's account.
            let refusals = try await server.store.read { tx in
                var query = AuditQuery(limit: 10)
                query.action = "session.authenticate"
                return try tx.auditEntries(query)
            }
            #expect(refusals.map(\.principalID) == ["disabled", "nobody"])
            #expect(refusals.allSatisfy { $0.outcome == .unauthenticated })
            #expect(refusals.map(\.detail) == ["account disabled", "no account for this certificate"])
        }
    }

    @Test("refuses an expired certificate, a certificate from another CA, and no haven/1 ALPN in the handshake")
    func handshakeRefusals() async throws {
        try await self.withServer { deployment, server in
            let expired = try deployment.credentials(
                for: "worker-kol",
                validity: 60,
                now: Date().addingTimeInterval(-3600)
            )
            await #expect(throws: (any Error).self) {
                let connection = try await RawConnection.connect(port: server.port, credentials: expired)
                _ = try await connection.hello()
            }
            let stranger = try TestDeployment()
            let foreign = try stranger.credentials(for: "worker-kol")
            await #expect(throws: (any Error).self) {
                let connection = try await RawConnection.connect(
                    port: server.port,
                    credentials: foreign,
                    trustRootsPEM: try deployment.credentials(for: "x").caPEM
                )
                _ = try await connection.hello()
            }
            // Without haven/1 the server closes right after the handshake (or fails
            // it): no hello answer ever comes back.
            var answered = false
            do {
                let connection = try await RawConnection.connect(
                    port: server.port,
                    credentials: try deployment.credentials(for: "worker-kol"),
                    alpn: ["h2"]
                )
                answered = try await connection.hello() != nil
            } catch {
                answered = false
            }
            #expect(!answered)
        }
    }

    @Test("serves 500 concurrent calls on one connection and several connections, each answer to its call")
    func manyCalls() async throws {
        // A raw client pipelines all 500 at once: allow that many in flight
        // (HavenClient keeps to the announced limit by itself).
        var configuration = ServerConfiguration()
        configuration.maxConcurrentCalls = 1000
        try await self.withServer(configuration) { deployment, server in
            let admin = try await self.connect(deployment, server, as: "admin")
            try await admin.hello()
            for (index, code) in ["KOL", "MUM", "MNL"].enumerated() {
                _ = try await admin.unary(
                    MethodCatalog.OfficeService.createOffice,
                    ServiceTests.officeRequest(code),
                    id: UInt64(index + 1)
                )
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for account in ["admin", "director-kol", "worker-kol", "worker-mnl"] {
                    group.addTask {
                        let connection = try await self.connect(deployment, server, as: account)
                        try await connection.hello()
                        let codes = ["KOL", "MUM", "MNL"]
                        for id in 1...500 {
                            var request = Haven_V1_GetOfficeRequest()
                            request.code = codes[id % 3]
                            try await connection.send(
                                .start(
                                    callID: UInt64(id),
                                    method: MethodCatalog.OfficeService.getOffice,
                                    request: request
                                )
                            )
                        }
                        var seen = Set<UInt64>()
                        while seen.count < 500 {
                            let envelope = try #require(try await connection.next())
                            let end = envelope.end
                            #expect(seen.insert(envelope.callID).inserted)
                            let expected = codes[Int(envelope.callID) % 3]
                            let visible =
                                account == "admin" || (account == "director-kol" && expected != "MNL")
                                || (account == "worker-kol" && expected == "KOL")
                                || (account == "worker-mnl" && expected == "MNL")
                            if visible {
                                #expect(end.statusCode == .ok)
                                #expect(try Haven_V1_Office(decodingPayload: end.payload).code == expected)
                            } else {
                                #expect(end.statusCode == .notFound)
                            }
                        }
                        await connection.close()
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test("shuts down gracefully: go-away, streams end UNAVAILABLE, the server stops")
    func gracefulShutdown() async throws {
        let deployment = try TestDeployment()
        let server = try await deployment.start()
        let connection = try await RawConnection.connect(
            port: server.port,
            credentials: try deployment.credentials(for: "worker-kol")
        )
        try await connection.hello()
        try await connection.send(
            .start(callID: 1, method: MethodCatalog.FeedService.subscribe, request: Self.follow())
        )
        _ = try await connection.next()  // caught up
        try await server.stop()
        var sawGoAway = false
        var streamEnd: Haven_V1_CallEnd?
        while let envelope = try await connection.next() {
            if case .goAway(let away) = envelope.kind {
                sawGoAway = true
                #expect(StatusCode(wire: away.code) == .unavailable)
                #expect(away.lastCallID == 1)
            }
            if envelope.callID == 1, case .end(let end) = envelope.kind { streamEnd = end }
        }
        #expect(sawGoAway)
        #expect(streamEnd?.statusCode == .unavailable)
        await #expect(throws: (any Error).self) {
            _ = try await RawConnection.connect(
                port: server.port,
                credentials: try deployment.credentials(for: "worker-kol")
            )
        }
    }
}
