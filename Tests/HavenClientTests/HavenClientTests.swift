import Foundation
import HavenClient
import HavenProtocol
import HavenServer
import HavenTestSupport
import SwiftProtobuf
import Synchronization
import Testing

extension HavenCredentials {
    init(_ credentials: TestCredentials) throws {
        try self.init(
            caPEM: credentials.caPEM,
            certificatePEM: credentials.certificatePEM,
            privateKeyPEM: credentials.privateKeyPEM
        )
    }
}

/// Records what a test router's handlers saw.
final class Probe: Sendable {
    let started = Mutex(0)
    let cancelled = Mutex(0)
    let failedOnce = Mutex(false)
}

@Suite("HavenClient against a real server")
struct HavenClientTests {
    func configuration(
        _ deployment: TestDeployment,
        _ server: RunningServer,
        as account: String = "worker-kol",
        timeout: Duration = .seconds(10)
    ) throws
        -> HavenClientConfiguration
    {
        var configuration = HavenClientConfiguration(
            host: "127.0.0.1",
            port: server.port,
            credentials: try HavenCredentials(try deployment.credentials(for: account))
        )
        configuration.serverHostname = "localhost"
        configuration.defaultTimeout = timeout
        return configuration
    }

    static func office(_ code: String) -> Haven_V1_CreateOfficeRequest {
        var request = Haven_V1_CreateOfficeRequest()
        request.office.code = code
        request.office.name = "\(code) field office"
        request.office.city = "Fictional City"
        request.office.country = "IN"
        request.office.timeZone = "Asia/Kolkata"
        return request
    }

    @Test("a thousand concurrent calls on one connection, every response matched to its call")
    func thousandCalls() async throws {
        let deployment = try TestDeployment()
        try await deployment.serving { server in
            var configuration = try self.configuration(deployment, server, as: "admin")
            // All thousand deadlines start at once and the suite shares two cores: this checks matching, not speed.
            configuration.defaultTimeout = .seconds(60)
            try await withHavenClient(configuration) { client in
                for code in ["KOL", "MUM", "MNL"] { _ = try await client.offices.create(Self.office(code)) }
                let codes = ["KOL", "MUM", "MNL"]
                try await withThrowingTaskGroup(of: (Int, String).self) { group in
                    for index in 0..<1000 {
                        group.addTask {
                            let office = try await client.offices.get(.with { $0.code = codes[index % 3] })
                            return (index, office.code)
                        }
                    }
                    var answered = 0
                    for try await (index, code) in group {
                        #expect(code == codes[index % 3])
                        answered += 1
                    }
                    #expect(answered == 1000)
                }
            }
            try await server.stop()
        }
    }

    @Test("spreads calls over a pool of connections")
    func pool() async throws {
        let deployment = try TestDeployment()
        let server = try await deployment.start()
        var configuration = try self.configuration(deployment, server)
        configuration.poolSize = 3
        try await withHavenClient(configuration) { client in
            try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<300 { group.addTask { try await client.session.whoAmI().id } }
                for try await id in group { #expect(id == "worker-kol") }
            }
        }
        try await server.stop()
    }

    @Test("runs as a Service: calls work while it runs, and fail once it has stopped")
    func service() async throws {
        let deployment = try TestDeployment()
        let server = try await deployment.start()
        let client = HavenClient(configuration: try self.configuration(deployment, server))
        let running = Task { try await client.run() }
        #expect(try await client.session.whoAmI().id == "worker-kol")
        running.cancel()
        try await running.value
        let error = await #expect(throws: HavenError.self) { try await client.session.whoAmI() }
        #expect(error?.code == .unavailable)
        #expect(error?.source == .client)
        try await server.stop()
    }

    @Test("typed calls: errors carry the server's code and message, refusals come from the server")
    func typedCallsAndErrors() async throws {
        let deployment = try TestDeployment()
        let server = try await deployment.start()
        try await withHavenClient(try self.configuration(deployment, server, as: "admin")) { client in
            let me = try await client.session.whoAmI()
            #expect(me.id == "admin")
            let created = try await client.offices.create(Self.office("KOL"))
            var update = Haven_V1_UpdateOfficeRequest()
            update.code = "KOL"
            update.expectedVersion = created.version + 5
            update.name = "Stale"
            let error = await #expect(throws: HavenError.self) { try await client.offices.update(update) }
            #expect(error?.code == .failedPrecondition)
            #expect(error?.source == .server)
            #expect(error?.currentVersion == created.version)
            let missing = await #expect(throws: HavenError.self) {
                try await client.offices.get(.with { $0.code = "ZZZ" })
            }
            #expect(missing?.code == .notFound)
        }
        try await server.stop()
    }

    @Test("a create retried after a lost reply uses the same generated key and makes no duplicate")
    func retriedCreate() async throws {
        let deployment = try TestDeployment()
        let probe = Probe()
        let server = try await deployment.start(router: { environment in
            var router = Router()
            let offices = HavenServices.router(environment)
            router.register(MethodCatalog.OfficeService.createOffice) { request, context in
                // Commit the create, then lose the reply the first time.
                let office: Haven_V1_Office = try await Self.forward(
                    offices,
                    MethodCatalog.OfficeService.createOffice,
                    request,
                    context
                )
                let first = probe.failedOnce.withLock { failed in
                    defer { failed = true }
                    return !failed
                }
                if first { throw HavenError(code: .unavailable, message: "simulated lost reply") }
                return office
            }
            router.register(MethodCatalog.OfficeService.listOffices) { request, context in
                try await Self.forward(offices, MethodCatalog.OfficeService.listOffices, request, context)
            }
            return router
        })
        try await withHavenClient(try self.configuration(deployment, server, as: "admin")) { client in
            var request = Self.office("KOL")
            request.idempotencyKey = ""
            let office = try await client.offices.create(request)
            #expect(office.code == "KOL")
            #expect(probe.failedOnce.withLock { $0 })
            let all = try await client.offices.list()
            #expect(all.offices.map(\.code) == ["KOL"])
        }
        try await server.stop()
    }

    static func forward<Request, Response>(
        _ router: Router,
        _ method: MethodDescriptor<Request, Response>,
        _ request: Request,
        _ context: CallContext
    ) async throws -> Response {
        guard case .unary(let handler) = router.entry(for: method.fullName) else {
            throw HavenError(code: .internal, message: "not routed")
        }
        return try Response(decodingPayload: try await handler(request.serializedPayload(), context))
    }

    /// A router whose WhoAmI waits until cancelled, noting that it started and
    /// that it was cancelled; GetOffice answers at once (to open the connection).
    static func slowRouter(_ probe: Probe) -> (ServiceEnvironment) -> Router {
        { _ in
            var router = Router()
            router.register(MethodCatalog.SessionService.whoAmI) { _, context in
                probe.started.withLock { $0 += 1 }
                do {
                    try await Task.sleep(for: .seconds(30))
                } catch {
                    probe.cancelled.withLock { $0 += 1 }
                    throw error
                }
                return context.principal.wire
            }
            router.register(MethodCatalog.OfficeService.getOffice) { request, _ in
                Haven_V1_Office.with { $0.code = request.code }
            }
            return router
        }
    }

    @Test("a call past its deadline fails with DEADLINE_EXCEEDED, and the server stops its work")
    func deadline() async throws {
        let deployment = try TestDeployment()
        let probe = Probe()
        let server = try await deployment.start(router: Self.slowRouter(probe))
        try await withHavenClient(try self.configuration(deployment, server)) { client in
            _ = try await client.offices.get(.with { $0.code = "KOL" })  // connected
            let started = ContinuousClock.now
            let error = await #expect(throws: HavenError.self) {
                try await client.session.whoAmI(options: CallOptions(timeout: .milliseconds(500)))
            }
            #expect(error?.code == .deadlineExceeded)
            #expect(ContinuousClock.now - started < .seconds(5))
            try await Self.eventually { probe.cancelled.withLock { $0 } == 1 }
        }
        try await server.stop()
    }

    @Test("cancelling the task cancels the call on the server")
    func cancellation() async throws {
        let deployment = try TestDeployment()
        let probe = Probe()
        let server = try await deployment.start(router: Self.slowRouter(probe))
        try await withHavenClient(try self.configuration(deployment, server)) { client in
            let task = Task { try await client.session.whoAmI() }
            try await Self.eventually { probe.started.withLock { $0 } == 1 }  // the server is working on it
            task.cancel()
            let error = await #expect(throws: HavenError.self) { try await task.value }
            #expect(error?.code == .cancelled)
            #expect(error?.source == .client)
            try await Self.eventually { probe.cancelled.withLock { $0 } == 1 }
        }
        try await server.stop()
    }

    static func eventually(_ condition: () -> Bool) async throws {
        for _ in 0..<1000 where !condition() { try await Task.sleep(for: .milliseconds(10)) }
        #expect(condition())
    }

    @Test("refuses a server signed by another CA, a wrong host name, and is refused with an expired certificate")
    func tlsRefusals() async throws {
        let deployment = try TestDeployment()
        let server = try await deployment.start()
        let stranger = try TestDeployment()

        var foreignCA = try self.configuration(deployment, server)
        let mine = try deployment.credentials(for: "worker-kol")
        foreignCA.credentials = try HavenCredentials(
            caPEM: try stranger.caPEM,
            certificatePEM: mine.certificatePEM,
            privateKeyPEM: mine.privateKeyPEM
        )
        foreignCA.connectTimeout = .seconds(2)
        foreignCA.maximumAttempts = 1

        var wrongName = try self.configuration(deployment, server)
        wrongName.serverHostname = "haven.wrong.example"
        wrongName.maximumAttempts = 1

        var expired = try self.configuration(deployment, server)
        expired.credentials = try HavenCredentials(
            try deployment.credentials(for: "worker-kol", validity: 60, now: Date().addingTimeInterval(-7200))
        )
        expired.maximumAttempts = 1

        // Each names the address and the cause, and is not retried: no retry can change a certificate.
        for (label, configuration, cause) in [
            ("foreign CA", foreignCA, "does not verify against your CA certificate"),
            ("wrong host name", wrongName, "not valid for haven.wrong.example"),
            ("expired certificate", expired, "expired"),
        ] {
            var limited = configuration
            limited.defaultTimeout = .seconds(20)
            limited.maximumAttempts = 4
            let started = ContinuousClock.now
            try await withHavenClient(limited) { client in
                let error = await #expect(throws: HavenError.self, "\(label)") { try await client.session.whoAmI() }
                #expect(error?.code == .unauthenticated, "\(label): \(error?.description ?? "")")
                #expect(error?.source == .transport)
                #expect(
                    error?.message.contains("127.0.0.1:\(server.port)") == true,
                    "\(label): \(error?.message ?? "")"
                )
                #expect(error?.message.contains(cause) == true, "\(label): \(error?.message ?? "")")
            }
            #expect(
                ContinuousClock.now - started < .seconds(5),
                "\(label): refused at once, not retried until the deadline"
            )
        }
        try await server.stop()
    }

    /// Calls across the restart get longer than the usual 10 s: in a loaded
    /// full run a reconnect and the restarted server's first answers have
    /// outlasted it (DEADLINE_EXCEEDED, "no hello answer in time"), which is
    /// not what this test is about.
    static let restartTimeout = Duration.seconds(30)

    @Test("a server restart: calls in flight fail UNAVAILABLE, later calls reconnect, the feed resumes without gap")
    func restart() async throws {
        let deployment = try TestDeployment()
        var server = try await deployment.start { $0.shutdownGrace = .milliseconds(100) }
        let port = server.port
        let probe = Probe()
        try await withHavenClient(try self.configuration(deployment, server, as: "admin", timeout: Self.restartTimeout))
        { admin in
            for code in ["KOL", "MUM"] { _ = try await admin.offices.create(Self.office(code)) }
        }
        try await withHavenClient(try self.configuration(deployment, server, timeout: Self.restartTimeout)) { client in
            var feed = client.feed.follow(subjects: [.case]).makeAsyncIterator()
            #expect(try await feed.next()?.caughtUp.cursor.isEmpty == false)
            var opened: [String] = []
            for index in 0..<3 {
                opened.append(try await client.cases.open(Self.openCase(index)).id)
            }
            var seen: [String] = []
            while seen.count < 3, let item = try await feed.next() {
                if case .change(let change) = item.item { seen.append(change.caseRecord.id) }
            }

            // A call in flight when the server goes down fails with UNAVAILABLE.
            let inFlight = Task {
                try await client.feed.subscribe(
                    .with {
                        $0.follow = true
                        $0.start = .now
                    }
                )
            }
            var stream = try await inFlight.value.makeAsyncIterator()
            _ = try await stream.next()
            try await server.stop()
            let broken = await #expect(throws: HavenError.self) { _ = try await stream.next() }
            #expect(broken?.code == .unavailable)

            // Changes made while the client is away.
            server = try await deployment.start { $0.listenPort = port }
            try await withHavenClient(
                try self.configuration(deployment, server, as: "director-kol", timeout: Self.restartTimeout)
            ) { other in
                for index in 3..<5 { opened.append(try await other.cases.open(Self.openCase(index)).id) }
            }
            // The same client reconnects by itself.
            opened.append(try await client.cases.open(Self.openCase(5)).id)
            while seen.count < 6, let item = try await feed.next() {
                if case .change(let change) = item.item { seen.append(change.caseRecord.id) }
            }
            #expect(seen == opened, "every case exactly once, in order, across the restart")
            _ = probe
        }
        try await server.stop()
    }

    static func openCase(_ index: Int) -> Haven_V1_OpenCaseRequest {
        var request = Haven_V1_OpenCaseRequest()
        request.officeCode = "KOL"
        request.category = .forcedLabour
        request.title = "Fictional case \(index)"
        return request
    }

    @Test("every create request with an idempotency key gets one generated when empty")
    func idempotencyKeys() throws {
        for type in HavenSchema.messageTypes where type.protoMessageName.hasSuffix("Request") {
            let sample = try #require(ProtocolSamples.texts[type.protoMessageName])
            let keyed = sample.contains("idempotency_key")
            #expect((type is any IdempotentRequest.Type) == keyed, "\(type.protoMessageName)")
        }
        // The client fills keys for IDEMPOTENT methods only: those must be exactly the keyed requests.
        var keyedTypes: Set<String> = []
        for type in HavenSchema.messageTypes where type is any IdempotentRequest.Type {
            keyedTypes.insert(type.protoMessageName)
        }
        for method in MethodCatalog.all {
            #expect(
                (method.idempotency == .idempotent) == keyedTypes.contains(method.requestType),
                "\(method.fullName) (\(method.requestType))"
            )
        }
        #expect(MethodCatalog.all.filter { $0.idempotency == .idempotent }.count == 8, "the eight creates")
    }

    @Test("loads a credentials bundle from the files haven-admin writes, and names a missing file")
    func bundle() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let data = DataDirectory(directory.url.appendingPathComponent("data"))
        let report = try data.initialize(development: true)
        let bundle = try #require(report.adminCredentials)
        _ = try HavenCredentials(bundle: URL(fileURLWithPath: bundle))
        try FileManager.default.removeItem(atPath: bundle + "/client-key.pem")
        let error = #expect(throws: HavenError.self) {
            try HavenCredentials(bundle: URL(fileURLWithPath: bundle))
        }
        #expect(error?.message.contains("client-key.pem") == true)
    }
}
