import Crypto
import Foundation
import HavenProtocol
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SwiftProtobuf
import Synchronization
import Tracing

/// A connection to a Haven server, for partner organisations' software.
///
/// Calls are async, typed by the schema's generated messages, and grouped as
/// the services are: `client.cases`, `client.survivors`, `client.referrals`…
/// Many calls run at once over one mutual-TLS connection (or a small pool);
/// the client connects on first use, reconnects with backoff after a failure,
/// puts a deadline on every call, cancels a call on the server when its task
/// is cancelled, and retries only what is safe: reads, and creates, for which
/// it generates the idempotency key itself.
///
/// Use it for a scope:
///
/// ```swift
/// let credentials = try HavenCredentials(bundle: URL(fileURLWithPath: "credentials/asha-home"))
/// try await withHavenClient(HavenClientConfiguration(host: "haven.example.org", credentials: credentials)) { client in
///     let referrals = try await client.referrals.list(.with { $0.statuses = [.pending] })
///     for referral in referrals.referrals { print(referral.survivorCode) }
/// }
/// ```
///
/// or run it as a `Service` in a `ServiceGroup`, which closes it on graceful shutdown.
///
/// Errors are `HavenError`s: `HavenError.source` tells a refusal by the
/// server from a broken connection or a local deadline.
public final class HavenClient: Sendable, Service {
    /// This library's version.
    public static let version = "0.1.0"

    /// The configuration the client was made with.
    public let configuration: HavenClientConfiguration
    private let pool: ConnectionPool
    private let instruments: ClientInstruments
    private let closed = Mutex(false)

    /// When to renew the client certificate by itself (nil: never), and
    /// whether a renewal is under way.
    private struct Renewal {
        var at: Date?
        var running = false
    }
    private let renewal: Mutex<Renewal>

    /// Creates a client. It connects on the first call.
    ///
    /// - Parameters:
    ///   - configuration: Server, credentials and behaviour.
    ///   - eventLoopGroup: The event loops to run connections on.
    public init(
        configuration: HavenClientConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.configuration = configuration
        self.instruments = ClientInstruments(configuration)
        self.pool = ConnectionPool(configuration: configuration, group: eventLoopGroup, instruments: self.instruments)
        self.renewal = Mutex(Renewal(at: Self.renewalInstant(configuration, configuration.credentials)))
    }

    /// The start of the last third of the certificate's life, when the
    /// client renews it by itself.
    private static func renewalInstant(
        _ configuration: HavenClientConfiguration,
        _ credentials: HavenCredentials
    )
        -> Date?
    {
        guard configuration.renewsCredentials, credentials.bundle != nil,
            let start = credentials.notValidBefore, let end = credentials.notValidAfter
        else { return nil }
        return end.addingTimeInterval(-end.timeIntervalSince(start) / 3)
    }

    // MARK: Credentials

    /// The credentials new connections use (the renewed ones after a renewal).
    public var credentials: HavenCredentials { self.pool.currentCredentials }

    /// Renews the client certificate now: makes a new P-256 key on this
    /// machine, asks the server for a certificate for it (authenticated by
    /// the current one, which stays valid until it expires), writes both into
    /// the credentials' bundle directory if they came from one, and uses them
    /// for every connection opened from now on.
    ///
    /// - Returns: The new credentials.
    /// - Throws: `HavenError`; on failure nothing is written and the
    ///   current credentials stay in use.
    @discardableResult
    public func renewCredentials() async throws -> HavenCredentialBundle {
        self.renewal.withLock { $0.running = true }
        defer { self.renewal.withLock { $0.running = false } }
        return try await self.performRenewal()
    }

    private func performRenewal() async throws -> HavenCredentialBundle {
        let key = P256.Signing.PrivateKey()
        var request = Haven_V1_RenewCredentialRequest()
        request.csrDer = Data(try HavenEnrollment.signingRequest(for: key))
        let issued = try await self.unary(MethodCatalog.EnrollmentService.renewCredential, request)
        let current = self.pool.currentCredentials
        let bundle = HavenCredentialBundle(
            caPEM: issued.caCertificatePem,
            certificatePEM: issued.certificateChainPem,
            privateKeyPEM: key.pemRepresentation,
            server: current.server
                ?? ClientConnection.display(host: self.configuration.host, port: self.configuration.port),
            credential: issued.credential
        )
        if let directory = current.bundle { try bundle.write(to: directory) }
        let renewed = try bundle.credentials(bundle: current.bundle)
        self.pool.replaceCredentials(renewed)
        self.renewal.withLock { $0.at = Self.renewalInstant(self.configuration, renewed) }
        self.configuration.logger.notice(
            "renewed the client certificate",
            metadata: [
                "serial": "\(issued.credential.serial)", "expires_unix_ms": "\(issued.credential.notValidAfterUnixMs)",
            ]
        )
        return bundle
    }

    /// Renews the certificate first when it is due, once; a failure is
    /// logged and tried again an hour later (the current certificate still works).
    private func renewIfDue() async {
        let due = self.renewal.withLock { state -> Bool in
            guard let at = state.at, !state.running, Date() >= at else { return false }
            state.running = true
            return true
        }
        guard due else { return }
        defer { self.renewal.withLock { $0.running = false } }
        do {
            _ = try await self.performRenewal()
        } catch {
            self.renewal.withLock { $0.at = Date().addingTimeInterval(3600) }
            self.configuration.logger.warning(
                "could not renew the client certificate; trying again in an hour",
                metadata: ["error": "\(error)"]
            )
        }
    }

    /// Keeps the client open until the service group shuts down (or the task
    /// is cancelled), then closes its connections.
    public func run() async throws {
        defer { self.close() }
        try? await gracefulShutdown()
    }

    /// Closes every connection. Calls in flight fail with UNAVAILABLE; later calls too.
    public func close() {
        self.closed.withLock { $0 = true }
        self.pool.close()
    }

    // MARK: Calls

    /// Runs a unary call of the catalog.
    ///
    /// Prefer the typed sub-clients (`client.cases.open(…)`); this is what they call.
    ///
    /// - Parameters:
    ///   - method: The method, from `MethodCatalog`.
    ///   - request: The request. A create whose `idempotency_key` is empty gets a new random one, used by every retry.
    ///   - options: The call's deadline.
    /// - Returns: The response.
    /// - Throws: `HavenError`.
    public func unary<Request, Response>(
        _ method: MethodDescriptor<Request, Response>,
        _ request: Request,
        options: CallOptions = CallOptions()
    ) async throws -> Response {
        await self.renewIfDue()
        var request = request
        // From the schema's `idempotency_level`: only creates carry a key.
        if method.idempotency == .idempotent { Self.ensureIdempotencyKey(&request) }
        // From the schema's `idempotency_level`: reads, and creates carrying their key.
        let safeToRetry = method.idempotency.isSafeToRetry
        let payload: Data = request.serializedPayload()
        let started = ContinuousClock.now
        let deadline = started + (options.timeout ?? self.configuration.defaultTimeout)
        let instruments = self.instruments
        return try await instruments.tracer.withSpan(method.fullName, ofKind: .client) { span in
            // Attributes only for a span that records them (setting one builds
            // a dictionary, even on a tracer that drops it).
            if span.isRecording {
                span.attributes["rpc.system"] = "haven"
                span.attributes["rpc.method"] = method.fullName
            }
            let traceContext = instruments.traceContext(of: span)
            var attempt = 0
            do {
                while true {
                    attempt += 1
                    do {
                        let connection = try await self.pool.connection(before: deadline)
                        let end = try await connection.unary(
                            method: method.fullName,
                            payload: payload,
                            deadline: deadline,
                            traceContext: traceContext
                        )
                        if let error = end.error {
                            if error.code == .unavailable, safeToRetry,
                                try await self.mayRetry(method, attempt, deadline)
                            {
                                continue
                            }
                            throw error
                        }
                        let response = try Response(decodingPayload: end.payload)
                        instruments.callEnded(method.fullName, .ok, .now - started)
                        if span.isRecording { span.attributes["rpc.haven.status_code"] = 0 }
                        return response
                    } catch let failure as CallFailure {
                        let retryable =
                            !failure.permanent && failure.error.source == .transport
                            && (failure.notProcessed || safeToRetry)
                        if retryable, try await self.mayRetry(method, attempt, deadline) { continue }
                        throw failure.error
                    }
                }
            } catch {
                let code =
                    (error as? HavenError)?.code.statusCode ?? (error is CancellationError ? .cancelled : .unknown)
                instruments.callEnded(method.fullName, code, .now - started)
                if span.isRecording { span.attributes["rpc.haven.status_code"] = code.rawValue }
                throw error
            }
        }
    }

    /// Waits the backoff before another attempt; false when no attempt is left.
    private func mayRetry<Request, Response>(
        _ method: MethodDescriptor<Request, Response>,
        _ attempt: Int,
        _ deadline: ContinuousClock.Instant
    ) async throws -> Bool {
        guard attempt < self.configuration.maximumAttempts, !self.closed.withLock({ $0 }) else { return false }
        let delay = self.pool.backoff(failures: attempt)
        guard ContinuousClock.now + delay < deadline else { return false }
        try await Task.sleep(for: delay)
        self.instruments.retried(method.fullName)
        return true
    }

    /// Starts a server-streaming call of the catalog.
    ///
    /// - Parameters:
    ///   - method: The method, from `MethodCatalog`.
    ///   - request: The request.
    ///   - options: A deadline for the whole stream; none when nil.
    /// - Returns: The stream of responses; it ends when the server ends the
    ///   call, and throws `HavenError` if it fails. Stop iterating (or cancel
    ///   the task) to cancel the call on the server.
    public func serverStreaming<Request, Response>(
        _ method: MethodDescriptor<Request, Response>,
        _ request: Request,
        options: CallOptions = CallOptions()
    ) async throws -> HavenResponseStream<Response> {
        let payload: Data = request.serializedPayload()
        let deadline = ContinuousClock.now + (options.timeout ?? self.configuration.connectTimeout)
        // The span covers opening the stream; the server's span covers the whole stream.
        return try await self.instruments.tracer.withSpan(method.fullName, ofKind: .client) { span in
            if span.isRecording {
                span.attributes["rpc.system"] = "haven"
                span.attributes["rpc.method"] = method.fullName
            }
            do {
                let connection = try await self.pool.connection(before: deadline)
                let (callID, messages) = try await connection.serverStreaming(
                    method: method.fullName,
                    payload: payload,
                    timeout: options.timeout,
                    initialCredit: HavenResponseStream<Response>.window,
                    traceContext: self.instruments.traceContext(of: span)
                )
                self.instruments.streamOpened(method.fullName, .ok)
                return HavenResponseStream(messages: messages) { connection.grantCredit(callID: callID, messages: $0) }
            } catch let failure as CallFailure {
                self.instruments.streamOpened(method.fullName, failure.error.code.statusCode)
                throw failure.error
            }
        }
    }

    /// The pause before reconnecting after `failures` failures in a row.
    func reconnectDelay(failures: Int) -> Duration {
        self.pool.backoff(failures: failures)
    }

    /// Gives an idempotent create a key if it has none.
    static func ensureIdempotencyKey<Request>(_ request: inout Request) {
        guard var keyed = request as? any IdempotentRequest, keyed.idempotencyKey.isEmpty else { return }
        keyed.idempotencyKey = IdempotencyKey.make()
        request = keyed as! Request
    }
}

/// Runs `body` with a client, and closes it afterwards, whatever happens.
///
/// - Parameters:
///   - configuration: Server, credentials and behaviour.
///   - body: What to do with the client.
/// - Returns: What `body` returns.
/// - Throws: What `body` throws.
public func withHavenClient<Result: Sendable>(
    _ configuration: HavenClientConfiguration,
    _ body: (HavenClient) async throws -> Result
) async throws -> Result {
    let client = HavenClient(configuration: configuration)
    defer { client.close() }
    return try await body(client)
}

/// A create request that carries an idempotency key (the generated
/// sub-clients' file declares the conformances, from the schema).
public protocol IdempotentRequest: HavenWireMessage {
    /// The key; the client fills an empty one with a new UUID, random but
    /// for its first 48 bits, the time (version 7).
    var idempotencyKey: String { get set }
}
