import Foundation
import HavenProtocol
import HavenServer
import HavenTestSupport
import NIOCore
import SwiftProtobuf
import Testing

/// Hostile peers at volume, against the built `havend` over real sockets:
/// idle sockets by the thousand, strangers and clients past every cap, calls
/// past the in-flight cap, a peer that never reads, half-open handshakes and
/// connections dropped in every state. For each: the documented answer, a
/// bystander still served, and the server's open descriptors and resident
/// memory back to where they were (read from `/proc`).
///
/// `HAVEN_LONG=1` runs the floods ten times larger. Its floods load both
/// cores as PostgreSQL's suites do (`.heavy`): a certificate's cut-off timed
/// beside its call flood went off 3.4 s after expiry against a 3 s bound.
@Suite("Hostile peers at volume", .serialized, .heavy)
struct HostilePeerTests {
    static let scale = ProcessInfo.processInfo.environment["HAVEN_LONG"] == nil ? 1 : 10
    /// Resident memory a flood may take, and leave behind once its peers are
    /// gone: the allocator keeps what it freed (`malloc_trim` returned 16 of
    /// 26 MiB after two greedy peers), not what the peers held. Before
    /// ``WriteCompactionHandler`` one peer that never read took 94 MiB.
    static let residentGrowthBound = 48 << 20

    static let whoAmI = MethodCatalog.SessionService.whoAmI

    /// A deployment whose `worker-kol` and `admin` hold credentials, served by havend with `settings`.
    func withHavend(
        _ settings: [String],
        _ body: (TestDeployment, HavendProcess) async throws -> Void
    ) async throws {
        let havend = RepositoryPaths.product("havend")
        guard FileManager.default.isExecutableFile(atPath: havend.path) else {
            #expect(!runningInCI, "CI builds havend with the tests")
            print("SKIPPED: build havend first (swift build)")
            return
        }
        let deployment = try TestDeployment()
        let arguments =
            ["--data-dir", deployment.dataDirectory.root.path, "--set", "listen_port=0"]
            + settings.flatMap { ["--set", $0] }
        let server = try await HavendProcess.start(havend, arguments: arguments)
        do {
            try await body(deployment, server)
        } catch {
            await server.killed()
            throw error
        }
        #expect(server.isRunning, "havend is still running")
        #expect(await server.stopped() == 0, "havend exits 0 on SIGTERM")
    }

    /// The server's open descriptors, sockets and resident memory at a quiet moment.
    struct Baseline {
        var descriptors: Int
        var sockets: Int
        var resident: Int

        init(_ server: HavendProcess) {
            self.descriptors = server.openDescriptors
            self.sockets = server.openSockets
            self.resident = server.residentBytes
        }
    }

    /// Descriptors the server may open for itself under load, beside its
    /// peers' sockets: SQLite's reader pool opens up to 5 connections to the
    /// database on demand (GRDB's `maximumReaderCount`), and keeps them.
    static let readerPool = 5

    /// Expects the server back at `baseline` once its peers are gone: its
    /// sockets at most `baseline.sockets + descriptorChange` (waiting up to
    /// 20 s for them to close), its other descriptors grown by no more than
    /// ``readerPool``, and its resident memory grown by less than
    /// ``residentGrowthBound``. Returns its descriptors and growth, for the
    /// printed figures.
    static func expectRecovered(
        _ server: HavendProcess,
        _ baseline: Baseline,
        descriptorChange: Int = 0,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> (descriptors: Int, grown: Int) {
        let limit = baseline.sockets + descriptorChange
        let sockets = try await Self.sockets(of: server, settlingTo: limit)
        #expect(sockets <= limit, "sockets back to \(limit), are \(sockets)", sourceLocation: sourceLocation)
        let descriptors = server.openDescriptors
        let files = descriptors - sockets
        #expect(
            files <= baseline.descriptors - baseline.sockets + Self.readerPool,
            "other descriptors \(files), were \(baseline.descriptors - baseline.sockets)",
            sourceLocation: sourceLocation
        )
        let grown = server.residentBytes - baseline.resident
        #expect(
            grown < Self.residentGrowthBound,
            "resident memory grew by \(grown >> 20) MiB",
            sourceLocation: sourceLocation
        )
        return (descriptors, grown)
    }

    /// A client whose hello the server answered with its own. On two loaded
    /// cores a TLS handshake and hello can take longer than a short
    /// `handshake_timeout_ms` (500 ms in one test): the server then answers
    /// with a go-away, or closes during the handshake, rightly, and the client
    /// connects again (at most five times) — a bystander must start out
    /// served, and a peer must be greeted before it misbehaves.
    static func greeted(
        _ credentials: TestCredentials,
        _ server: HavendProcess,
        receiveBufferBytes: Int? = nil
    ) async throws -> RawConnection {
        var answers: [String] = []
        for _ in 0..<5 {
            let connection: RawConnection
            do {
                connection = try await RawConnection.connect(
                    port: server.port,
                    credentials: credentials,
                    receiveBufferBytes: receiveBufferBytes
                )
            } catch {
                // Closed by the server during the handshake.
                answers.append(String(describing: error))
                continue
            }
            let answer = try? await connection.hello()
            if case .hello = answer?.kind { return connection }
            answers.append(answer.map { String(describing: $0.kind) } ?? "nothing")
            await connection.close()
        }
        Issue.record("no hello answered in five connections: \(answers)")
        throw HavenError(code: .unavailable, message: "no hello answered")
    }

    /// A well-behaved client: connects, says hello, makes a call.
    static func served(_ credentials: TestCredentials, _ server: HavendProcess) async throws -> Bool {
        // Greeted as above: under a short handshake timeout a loaded machine can outlast it.
        let connection = try await Self.greeted(credentials, server)
        let served = try await connection.call(Self.whoAmI, .init(), id: 1).statusCode == .ok
        await connection.close()
        return served
    }

    /// Waits (at most 20 s) for the server's open descriptors to fall to
    /// `limit` and returns the count then.
    static func sockets(of server: HavendProcess, settlingTo limit: Int) async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(20)
        var count = server.openSockets
        while count > limit, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            count = server.openSockets
        }
        return count
    }

    /// A metric sample from the server's operations listener (0 when absent).
    static func metric(_ server: HavendProcess, _ series: String) async throws -> Double {
        let answer = try await HTTPProbe.request("http://127.0.0.1:\(server.operationsPort)", "/metrics")
        return HTTPProbe.sample(answer.body, series) ?? 0
    }

    /// Opens `count` connections with `credentials`, each saying hello: returns
    /// those admitted (still open) and how many were refused RESOURCE_EXHAUSTED.
    static func connect(
        _ count: Int,
        _ credentials: TestCredentials,
        _ server: HavendProcess
    ) async throws -> (admitted: [RawConnection], refused: Int) {
        var admitted: [RawConnection] = []
        var refused = 0
        for _ in 0..<count {
            let connection = try await RawConnection.connect(port: server.port, credentials: credentials)
            // A refused connection may be closed before the hello is written: the go-away is read anyway.
            try? await connection.send(.hello(clientAgent: "haven-tests/1", versions: [1]))
            let answer = try await connection.next()
            if case .hello = answer?.kind {
                admitted.append(connection)
            } else {
                #expect(Self.goAwayCode(answer) == .resourceExhausted)
                refused += 1
                await connection.close()
            }
        }
        return (admitted, refused)
    }

    static func goAwayCode(_ envelope: Haven_V1_ServerEnvelope?) -> StatusCode? {
        guard case .goAway(let away) = envelope?.kind else { return nil }
        return StatusCode(wire: away.code)
    }

    @Test(
        "thousands of idle sockets, strangers without certificates and clients past the cap: each its documented answer, a client still served, descriptors and memory back"
    )
    func idleFlood() async throws {
        try await self.withHavend(
            ["max_connections=16", "max_enrolling_connections=8", "max_pending_handshakes=64"]
        ) { deployment, server in
            let worker = try deployment.credentials(for: "worker-kol")
            let admin = try deployment.credentials(for: "admin")
            let stranger = TestCredentials(caPEM: try deployment.caPEM, certificatePEM: "", privateKeyPEM: "")

            let bystander = try await Self.greeted(worker, server)
            var callID: UInt64 = 0
            func bystanderServed() async throws -> Bool {
                callID += 1
                return try await bystander.call(Self.whoAmI, .init(), id: callID).statusCode == .ok
            }
            #expect(try await Self.served(admin, server))
            let baseline = Baseline(server)

            // 1. Idle sockets that never start a handshake, far past every cap.
            // 15,000 in the long mode: the test process's own open-file limit is often 20,000.
            let idleCount = Self.scale == 1 ? 2_000 : 15_000
            var idle = try await PlainSocket.open(idleCount, port: server.port)
            let during = try await Self.sockets(of: server, settlingTo: baseline.sockets + 64 + 2)
            #expect(
                during <= baseline.sockets + 64 + 2,
                "the server holds at most max_pending_handshakes idle sockets (\(during) sockets, baseline \(baseline.sockets))"
            )
            #expect(try await Self.served(admin, server), "a new client is served during the flood")
            #expect(try await bystanderServed(), "an open client is served during the flood")
            let evicted = idle.filter(\.closedByPeer).count
            #expect(evicted >= idleCount - 64 - 1, "\(evicted) of \(idleCount) idle sockets closed by the server")

            // 2. Strangers without a certificate (they may only enrol): 8 admitted, the rest refused.
            let (enrolling, enrollingRefused) = try await Self.connect(40, stranger, server)
            #expect(enrolling.count == 8 && enrollingRefused == 32)

            // 3. Authenticated clients past max_connections (16, the bystander holds one): 15 more admitted.
            let (clients, clientsRefused) = try await Self.connect(20, worker, server)
            #expect(clients.count == 15 && clientsRefused == 5, "strangers took no client's slot")
            #expect(try await bystanderServed())

            // Everyone leaves: half the idle sockets reset, half close in order.
            for (index, socket) in idle.enumerated() { socket.close(abort: index.isMultiple(of: 2)) }
            idle.removeAll()
            for connection in enrolling + clients { await connection.close() }
            let (after, grown) = try await Self.expectRecovered(server, baseline)
            #expect(try await bystanderServed())

            let pendingEvicted = try await Self.metric(
                server,
                #"haven_handshake_failures_total{reason="too_many_pending_handshakes"}"#
            )
            #expect(pendingEvicted >= Double(idleCount - 64 - 1))
            #expect(
                try await Self.metric(server, #"haven_connections_refused_total{reason="too_many_enrolling"}"#) == 32
            )
            #expect(
                try await Self.metric(server, #"haven_connections_refused_total{reason="too_many_connections"}"#) == 5
            )
            print(
                "idle flood: \(idleCount) idle sockets, \(evicted) closed by the server; 32 strangers and 5 clients refused; sockets \(baseline.sockets) → \(during) during the flood; descriptors \(baseline.descriptors) → \(after); resident +\(grown >> 20) MiB"
            )
            await bystander.close()
        }
    }

    @Test("a flood of calls past the in-flight cap: each call one answer, OK or RESOURCE_EXHAUSTED; memory back")
    func callFlood() async throws {
        try await self.withHavend(["max_concurrent_calls=8"]) { deployment, server in
            let worker = try deployment.credentials(for: "worker-kol")
            let flooder = try await RawConnection.connect(port: server.port, credentials: worker)
            try #require(try await flooder.hello() != nil)
            #expect(try await Self.served(worker, server))
            let baseline = Baseline(server)

            let calls = 20_000 * Self.scale
            let encoder = FrameEncoder()
            var sent = 0
            var codes: [StatusCode: Int] = [:]
            var answered = Set<UInt64>()
            while sent < calls {
                // Batches of 1,000 call starts in one write, then their answers.
                var batch: [UInt8] = []
                for id in (sent + 1)...min(sent + 1_000, calls) {
                    let start = try Haven_V1_ClientEnvelope.start(
                        callID: UInt64(id),
                        method: Self.whoAmI,
                        request: Haven_V1_WhoAmIRequest()
                    )
                    batch += try encoder.encode(start).readableBytesView
                }
                let batchEnd = min(sent + 1_000, calls)
                try await flooder.sendRaw(batch)
                while answered.count < batchEnd {
                    let envelope = try #require(try await flooder.next())
                    guard case .end(let end) = envelope.kind else { continue }
                    #expect(answered.insert(envelope.callID).inserted, "one answer per call")
                    codes[end.statusCode, default: 0] += 1
                }
                sent = batchEnd
            }
            #expect(answered.count == calls)
            #expect(Set(codes.keys).isSubset(of: [.ok, .resourceExhausted]), "\(codes)")
            #expect((codes[.resourceExhausted] ?? 0) > 0, "the cap was reached")
            #expect(try await Self.served(worker, server), "a bystander is served")
            #expect(try await flooder.call(Self.whoAmI, .init(), id: UInt64(calls + 1)).statusCode == .ok)
            await flooder.close()
            // The flooder's own connection was part of the baseline.
            let (_, grown) = try await Self.expectRecovered(server, baseline, descriptorChange: -1)
            print(
                "call flood: \(calls) calls, \(codes[.ok] ?? 0) OK, \(codes[.resourceExhausted] ?? 0) RESOURCE_EXHAUSTED; resident +\(grown >> 20) MiB"
            )
        }
    }

    @Test(
        "peers that never read their answers: bounded server memory, each closed after the stall timeout, others served; in the long mode, 20 peers grow nothing"
    )
    func neverReads() async throws {
        try await self.withHavend(["write_stall_timeout_ms=1000"]) { deployment, server in
            let worker = try deployment.credentials(for: "worker-kol")
            #expect(try await Self.served(worker, server))
            let baseline = Baseline(server)
            let ping = Array(try FrameEncoder().encode(Haven_V1_ClientEnvelope.ping(7)).readableBytesView)
            let batch = [UInt8]((0..<2_000).map { _ in ping }.joined())
            var peak = baseline.resident
            var afterRound: [Int] = []
            // Two greedy peers one after another (twenty in the long mode), flooding pings: the
            // server answers until its socket's send buffer (MiBs, the kernel's) is full, then stalls.
            for round in 1...(Self.scale == 1 ? 2 : 20) {
                let greedy = try await RawConnection.connect(
                    port: server.port,
                    credentials: worker,
                    receiveBufferBytes: 4096
                )
                try #require(try await greedy.hello() != nil)
                try await greedy.stopReading()
                // Resident memory sampled while the flood lasts.
                let sampler = Task {
                    var peak = baseline.resident
                    while !Task.isCancelled {
                        peak = max(peak, server.residentBytes)
                        try? await Task.sleep(for: .milliseconds(10))
                    }
                    return peak
                }
                // Pings until the server closes the connection (at most 2,000,000): the kernel's
                // buffers take the first MiBs of them at once, the server answers them at its own
                // pace (slower on a loaded machine) until the answers fill its socket's send buffer,
                // and then it stops reading, so these writes block until it closes.
                // The flood is driven from the connection's event loop: a loop here would wait for one
                // of Swift's two cooperative threads after every write, and a CPU-bound suite beside
                // this one (the wire codec's) held them for seconds at a time, so that in one run of
                // three the server had not been sent enough to stall within the minute below.
                let flood = Task { await greedy.flood(batch, times: 1_000) }
                #expect(try await Self.served(worker, server), "others are served meanwhile")
                // Unloaded, the server reaches the stall in about 5 s; the whole test suite on two
                // cores beside it can take it past 10 s.
                let stalled = try await Self.waitUntil(within: .seconds(60)) {
                    try await Self.metric(server, "haven_write_stalls_total") == Double(round)
                }
                var progress = ""
                if !stalled {
                    // What the server was doing instead, for the failure's report: still reading
                    // pings and answering them, or neither.
                    var samples: [String] = []
                    for sample in 0..<2 {
                        if sample > 0 { try await Task.sleep(for: .seconds(2)) }
                        let received = try await Self.metric(server, "haven_frames_received_total")
                        let sent = try await Self.metric(server, "haven_frames_sent_total")
                        samples.append("\(Int(received)) received, \(Int(sent)) sent")
                    }
                    progress = "frames: \(samples.joined(separator: "; 2 s later "))"
                }
                #expect(stalled, "the server closed the connection that never read. \(progress)")
                _ = await flood.value
                sampler.cancel()
                peak = max(peak, await sampler.value)
                await greedy.close()
                afterRound.append(try await Self.expectRecovered(server, baseline).grown)
            }
            #expect(
                peak - baseline.resident < Self.residentGrowthBound,
                "peak +\((peak - baseline.resident) >> 20) MiB"
            )
            let grown = try #require(afterRound.last)
            if afterRound.count >= 10 {
                // Retention, not a leak: growth levels off. A leak per peer would make the second
                // half of the peers add as much as the first half did.
                let half = afterRound[afterRound.count / 2 - 1]
                #expect(grown - half < half / 2, "after each peer +\(afterRound.map { $0 >> 20 }) MiB")
            }
            print(
                "never reads: \(afterRound.count) peers, peak +\((peak - baseline.resident) >> 20) MiB, after each +\(afterRound.map { $0 >> 20 }) MiB"
            )
        }
    }

    @Test(
        "half-open handshakes are closed at the handshake timeout; connections dropped in every state leave nothing behind"
    )
    func halfOpenAndDropped() async throws {
        try await self.withHavend(["handshake_timeout_ms=500"]) { deployment, server in
            let worker = try deployment.credentials(for: "worker-kol")
            let bystander = try await Self.greeted(worker, server)
            #expect(try await Self.served(worker, server))
            let baseline = Baseline(server)

            // Half-open: a TLS record header and part of a ClientHello, then nothing.
            let halfOpen = try await PlainSocket.open(50, port: server.port)
            for socket in halfOpen {
                try socket.send([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03])
            }
            try await Task.sleep(for: .seconds(1))
            let closed = try await Self.waitUntil { halfOpen.allSatisfy(\.closedByPeer) }
            #expect(closed, "every half-open handshake was closed at the timeout")

            // Dropped in every state, each by an orderly close and by a reset.
            let follow = {
                var request = Haven_V1_SubscribeRequest()
                request.start = .now
                request.follow = true
                return request
            }()
            let ping = Array(try FrameEncoder().encode(Haven_V1_ClientEnvelope.ping(1)).readableBytesView)
            for abort in [false, true] {
                // Before and during the TLS handshake.
                let early = try await PlainSocket.open(2, port: server.port)
                early[0].close(abort: abort)
                try early[1].send([0x16, 0x03, 0x01])
                early[1].close(abort: abort)
                // After the handshake, before the hello; after the hello; mid-frame. (Each but
                // the first greeted first: a loaded machine can outlast the 500 ms handshake timeout.)
                var beforeHello: RawConnection?
                for _ in 0..<5 where beforeHello == nil {
                    beforeHello = try? await RawConnection.connect(port: server.port, credentials: worker)
                }
                try await Self.drop(try #require(beforeHello, "a TLS handshake completed in five tries"), abort)
                try await Self.drop(try await Self.greeted(worker, server), abort)
                let midFrame = try await Self.greeted(worker, server)
                try await midFrame.sendRaw(Array(ping.prefix(ping.count - 2)))
                try await Self.drop(midFrame, abort)
                // With a followed feed open; with answers it never read.
                let following = try await Self.greeted(worker, server)
                try await following.send(
                    .start(callID: 1, method: MethodCatalog.FeedService.subscribe, request: follow)
                )
                try await Self.drop(following, abort)
                let unread = try await Self.greeted(worker, server, receiveBufferBytes: 4096)
                try await unread.stopReading()
                try await unread.sendRaw([UInt8]((0..<5_000).map { _ in ping }.joined()))
                try await Self.drop(unread, abort)
            }
            for socket in halfOpen { socket.close() }
            _ = try await Self.expectRecovered(server, baseline)
            #expect(try await Self.metric(server, "haven_connections_open") == 1, "only the bystander is left")
            #expect(try await bystander.call(Self.whoAmI, .init(), id: 1).statusCode == .ok)
            await bystander.close()
        }
    }

    /// Drops a connection: an orderly close, or a reset (which allows for
    /// a connection the server has closed already, such as one that has not
    /// said hello, at the handshake timeout).
    static func drop(_ connection: RawConnection, _ abort: Bool) async throws {
        if abort {
            try await connection.reset()
        } else {
            await connection.close()
        }
    }

    /// Polls `condition` for at most `limit`.
    static func waitUntil(
        within limit: Duration = .seconds(10),
        _ condition: () async throws -> Bool
    ) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        while try await !condition() {
            guard ContinuousClock.now < deadline else { return false }
            try await Task.sleep(for: .milliseconds(50))
        }
        return true
    }
}
