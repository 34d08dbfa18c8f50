import Crypto
import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import Logging
import Synchronization

/// Haven's router, policy, writer and store in one process, without sockets:
/// calls go straight to the handlers the TLS server would run, with a
/// principal chosen by the test and a clock the test controls.
package final class InProcessHaven: Sendable {
    package let directory: TemporaryDirectory
    package let store: SQLiteStore
    /// The store the services use: ``store``, seen through ``recording``.
    package let recording: RecordingStore
    package let environment: ServiceEnvironment
    package let router: Router
    package let keys: KeyCustodian
    private let clock: TestClock
    private let nextCallID = Mutex<UInt64>(0)

    /// A fresh store (in shared memory when the machine has it, so that the
    /// thousands of durable commits of a grid stay fast) holding `accounts`.
    package init(accounts: [Account], now: Date = Date(timeIntervalSince1970: 1_780_000_000)) throws {
        let base = FileManager.default.isWritableFile(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let url = URL(fileURLWithPath: base).appendingPathComponent("haven-inprocess-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        self.directory = TemporaryDirectory(existing: url)
        _ = try MasterKey.generate(at: self.directory.path("master.key"), development: true)
        self.keys = try KeyCustodian.load(masterKeyFile: self.directory.path("master.key"))
        self.store = try SQLiteStore(path: self.directory.path("haven.sqlite"), keys: self.keys.keys)
        let signer = try CheckpointSigner.loadOrCreate(at: self.directory.path("audit-signing.key"), development: true)
        let clock = TestClock(now)
        self.clock = clock
        self.recording = RecordingStore(self.store)
        self.environment = ServiceEnvironment(
            store: self.recording,
            keys: self.keys,
            checkpoints: signer,
            authority: try CredentialAuthority.ephemeral(now: now),
            operations: Operations(
                directory: DataDirectory(url),
                database: self.store,
                backupRecipient: BackupKey().privateKey.publicKey
            ),
            now: { clock.now }
        )
        self.router = HavenServices.router(self.environment)
        let at = Int64(now.timeIntervalSince1970 * 1000)
        try self.store.writeSynchronously { tx in
            for account in accounts { try tx.saveAccount(account, auditedAs: "test", action: "accounts.add", at: at) }
        }
    }

    deinit {
        self.directory.remove()
    }

    /// The id of the last call started (its audit entries carry `-/<id>`).
    package var lastCallID: UInt64 { self.nextCallID.withLock { $0 } }

    /// Audit entries of one call, by its id.
    package func auditEntries(ofCall id: UInt64) async throws -> [Haven_V1_AuditEntry] {
        try await self.store.read { tx in
            var query = AuditQuery(limit: 100_000)
            query.newestFirst = true
            return try tx.auditEntries(query).filter { $0.requestID == "-/\(id)" }
        }
    }

    /// The clock the services read.
    package var now: Date { self.clock.now }

    /// Moves the clock forward.
    package func advance(by seconds: TimeInterval) {
        self.clock.advance(by: seconds)
    }

    /// The principal of a stored account, as a connection would authenticate it.
    package func principal(_ accountID: String) throws -> Principal {
        guard let account = try self.store.writeSynchronously({ try $0.account(id: accountID) }) else {
            throw HavenError(code: .notFound, message: "no test account \(accountID)")
        }
        return Principal(account: account, certificateExpiresAt: Date.distantFuture)
    }

    private func context(_ principal: Principal, _ method: String) -> CallContext {
        var logger = Logger(label: "haven-inprocess")
        logger.logLevel = .critical
        let id = self.nextCallID.withLock {
            $0 += 1
            return $0
        }
        return CallContext(
            principal: principal,
            method: method,
            callID: id,
            deadline: .now + .seconds(60),
            logger: logger
        )
    }

    /// Runs a unary method as `principal`, as the connection would.
    package func call<Request, Response>(
        _ method: MethodDescriptor<Request, Response>,
        _ request: Request,
        as principal: Principal
    ) async throws -> Response {
        guard case .unary(let handler) = self.router.entry(for: method.fullName) else {
            throw HavenError(code: .unimplemented, message: "\(method.fullName) is not a unary method here")
        }
        let payload = try await handler(request.serializedPayload(), self.context(principal, method.fullName))
        return try Response(decodingPayload: payload)
    }

    /// Runs a unary method and returns its status code (OK on success).
    package func code<Request, Response>(
        _ method: MethodDescriptor<Request, Response>,
        _ request: Request,
        as principal: Principal
    ) async -> StatusCode {
        do {
            _ = try await self.call(method, request, as: principal)
            return .ok
        } catch let error as HavenError {
            return error.code.statusCode
        } catch {
            return .internal
        }
    }

    /// Runs a server-streaming method that ends by itself (a feed without
    /// `follow`) and returns every message.
    package func collect<Request, Response: Sendable>(
        _ method: MethodDescriptor<Request, Response>,
        _ request: Request,
        as principal: Principal
    ) async throws -> [Response] {
        guard case .serverStreaming(let handler) = self.router.entry(for: method.fullName) else {
            throw HavenError(code: .unimplemented, message: "\(method.fullName) is not a streaming method here")
        }
        let received = Mutex<[Response]>([])
        try await handler(
            request.serializedPayload(),
            self.context(principal, method.fullName),
            ResponseStream { payload in
                let message = try Response(decodingPayload: payload)
                received.withLock { $0.append(message) }
            }
        )
        return received.withLock { $0 }
    }

    /// The change feed replayed from its beginning as `principal` may see
    /// it: the changes of its items, in order (the feed's other items left out).
    package func replayedChanges(as principal: Principal) async throws -> [Haven_V1_ChangeEvent] {
        var replay = Haven_V1_SubscribeRequest()
        replay.start = .beginning
        return try await self.collect(MethodCatalog.FeedService.subscribe, replay, as: principal).compactMap { item in
            if case .change(let change) = item.item { change } else { nil }
        }
    }

    /// Starts a followed stream in a child task of `body`'s scope; `body`
    /// reads it with ``FollowedStream/next(until:)``; the stream is cancelled
    /// when `body` returns.
    package func follow<Request: Sendable, Response: Sendable, T: Sendable>(
        _ method: MethodDescriptor<Request, Response>,
        _ request: Request,
        as principal: Principal,
        _ body: (FollowedStream<Response>) async throws -> T
    ) async throws -> T {
        guard case .serverStreaming(let handler) = self.router.entry(for: method.fullName) else {
            throw HavenError(code: .unimplemented, message: "\(method.fullName) is not a streaming method here")
        }
        let (messages, continuation) = AsyncStream.makeStream(of: Response.self)
        let payload: Data = request.serializedPayload()
        let context = self.context(principal, method.fullName)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            // A stream that never delivers what the test waits for ends after a
            // minute, so the test fails instead of hanging.
            group.addTask {
                try? await Task.sleep(for: .seconds(60))
                continuation.finish()
            }
            group.addTask {
                defer { continuation.finish() }
                try await handler(
                    payload,
                    context,
                    ResponseStream { continuation.yield(try Response(decodingPayload: $0)) }
                )
            }
            let result = try await body(FollowedStream(messages: messages))
            group.cancelAll()
            try? await group.waitForAll()
            return result
        }
    }
}

/// The messages of a followed stream, read in order.
package final class FollowedStream<Response: Sendable>: @unchecked Sendable {
    private var iterator: AsyncStream<Response>.AsyncIterator

    init(messages: AsyncStream<Response>) {
        self.iterator = messages.makeAsyncIterator()
    }

    /// Messages until one satisfies `stop` (included), or the stream ends.
    package func next(until stop: (Response) -> Bool) async -> [Response] {
        var received: [Response] = []
        while let message = await self.iterator.next() {
            received.append(message)
            if stop(message) { break }
        }
        return received
    }
}

/// A clock a test moves by hand.
package final class TestClock: Sendable {
    private let date: Mutex<Date>

    package init(_ start: Date) {
        self.date = Mutex(start)
    }

    package var now: Date { self.date.withLock { $0 } }

    package func advance(by seconds: TimeInterval) {
        self.date.withLock { $0 = $0.addingTimeInterval(seconds) }
    }
}
