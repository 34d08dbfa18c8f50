import Foundation
import HavenProtocol
import HavenStore
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import SwiftASN1
import Synchronization
import Tracing
import X509

/// Haven's listener: mutual TLS 1.3 with ALPN `haven/1`, one
/// ``ServerConnection`` per client, graceful shutdown as a `Service`.
///
/// The listener only does transport: it maps each verified client
/// certificate to an enabled account (the principal) and hands the connection
/// to the router's handlers.
package final class TLSServer: Service, Sendable {
    private let configuration: ServerConfiguration
    private let sslContext: NIOSSLContext
    private let store: any RecordStore
    private let router: Router
    private let logger: Logger
    private let group: any EventLoopGroup
    private let statistics: ServerStatistics
    private let tracer: any Tracer

    /// A socket whose TLS handshake is under way.
    private struct PendingHandshake {
        var channel: any Channel
        var promise: EventLoopPromise<PeerIdentity>

        /// Ends it: the pending handshake that waited longest makes room for a new one.
        func evict() {
            self.promise.fail(HavenError(code: .resourceExhausted, message: "too many pending handshakes"))
            self.channel.close(promise: nil)
        }
    }

    private struct State {
        var serverChannel: (any Channel)?
        var slots: ConnectionSlots<PendingHandshake, ServerConnection>
        var nextConnectionID = 0
    }

    private let state: Mutex<State>
    private let listening: EventLoopPromise<SocketAddress>
    /// Fired once the server is shutting down and its last connection has closed: ends the session watch.
    private let drained = Signal()
    /// Failed handshakes cost a stranger nothing: one line per reason every 10 s.
    private let handshakeLog = RateLimitedLog(interval: .seconds(10))
    /// Refusals for too many connections, likewise.
    private let refusalLog = RateLimitedLog(interval: .seconds(10))

    package init(
        configuration: ServerConfiguration,
        tls: TLSMaterial,
        store: any RecordStore,
        router: Router,
        logger: Logger,
        statistics: ServerStatistics = ServerStatistics(),
        tracer: any Tracer = NoOpTracer(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws {
        self.statistics = statistics
        self.tracer = tracer
        self.configuration = configuration
        self.sslContext = try tls.serverContext()
        self.store = store
        self.router = router
        self.logger = logger
        self.group = group
        self.listening = group.next().makePromise(of: SocketAddress.self)
        self.state = Mutex(
            State(
                slots: ConnectionSlots(
                    maxPending: configuration.maxPendingHandshakes,
                    maxEnrolling: configuration.maxEnrollingConnections,
                    maxConnections: configuration.maxConnections
                )
            )
        )
    }

    /// The address the server listens on, once it does.
    package var listeningAddress: SocketAddress {
        get async throws { try await self.listening.futureResult.get() }
    }

    private struct AcceptedConnection: Sendable {
        var channel: any Channel
        var asyncChannel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        var peer: EventLoopFuture<PeerIdentity>
    }

    /// Listens and serves until a graceful shutdown completes.
    package func run() async throws {
        // Whoever waits for the address is told, should the run end before the bind (no-op after it).
        defer { self.listening.fail(HavenError(code: .unavailable, message: "the server stopped before listening")) }
        let configuration = self.configuration
        let sslContext = self.sslContext
        let statistics = self.statistics
        let serverChannel: NIOAsyncChannel<AcceptedConnection, Never>
        do {
            serverChannel = try await ServerBootstrap(group: self.group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .bind(host: configuration.listenHost, port: configuration.listenPort) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handshake = channel.eventLoop.makePromise(of: PeerIdentity.self)
                        let (pendingID, evicted) = self.state.withLock {
                            $0.slots.accepted(PendingHandshake(channel: channel, promise: handshake))
                        }
                        evicted?.evict()
                        handshake.futureResult.whenComplete { _ in
                            self.state.withLock { $0.slots.handshakeEnded(pendingID) }
                        }
                        let pipeline = channel.pipeline.syncOperations
                        try pipeline.addHandler(WriteCompactionHandler())
                        try pipeline.addHandler(NIOSSLServerHandler(context: sslContext))
                        try pipeline.addHandler(
                            WriteStallHandler(timeout: .init(configuration.writeStallTimeout)) { [statistics] in
                                statistics.writeStalled()
                            }
                        )
                        try pipeline.addHandler(
                            HandshakeHandler(timeout: .init(configuration.handshakeTimeout), promise: handshake)
                        )
                        try pipeline.addHandler(
                            FrameReader(
                                maximumPayloadLength: configuration.maxFrameBytes,
                                frameTimeout: .init(configuration.frameTimeout)
                            )
                        )
                        return AcceptedConnection(
                            channel: channel,
                            asyncChannel: try NIOAsyncChannel(wrappingChannelSynchronously: channel),
                            peer: handshake.futureResult
                        )
                    }
                }
        } catch {
            let failure = HavenError(
                code: .unavailable,
                message: "cannot listen on \(configuration.listenHost):\(configuration.listenPort): \(error)"
            )
            self.listening.fail(failure)
            throw failure
        }
        let shutDownAlready = self.state.withLock { state in
            state.serverChannel = serverChannel.channel
            return state.slots.shuttingDown
        }
        if shutDownAlready { serverChannel.channel.close(promise: nil) }
        if !shutDownAlready { self.statistics.isAccepting = true }
        if let address = serverChannel.channel.localAddress {
            self.listening.succeed(address)
            self.logger.info("listening", metadata: ["address": "\(address)"])
        }

        try await withGracefulShutdownHandler {
            try await serverChannel.executeThenClose { inbound in
                do {
                    try await ListenerErrorHandler.install(on: serverChannel.channel, logger: self.logger)
                } catch {
                    throw HavenError(code: .internal, message: "cannot guard the listener: \(error)")
                }
                try await withThrowingDiscardingTaskGroup { group in
                    group.addTask { await self.watchSessions() }
                    for try await accepted in inbound {
                        group.addTask { await self.serve(accepted) }
                    }
                    // The stream ends when the listener closes: at a shutdown, or when NIO closed it
                    // after an error on its socket. The latter must fail the run (the group would
                    // otherwise wait for the session watch, which ends only after a shutdown).
                    if !Task.isCancelled, !self.state.withLock({ $0.slots.shuttingDown }) {
                        throw HavenError(code: .unavailable, message: "the listener closed without a shutdown")
                    }
                }
            }
        } onGracefulShutdown: {
            self.initiateShutdown()
        }
        self.logger.info("stopped")
    }

    /// Stops accepting connections and drains the open ones: each gets a
    /// go-away, its calls get the grace period, then it closes. ``run()``
    /// returns when the last connection has closed.
    package func initiateShutdown() {
        let (channel, drain) = self.state.withLock { state in
            (state.serverChannel, state.slots.shutDown())
        }
        let (connections, pending) = drain
        self.statistics.isAccepting = false
        self.logger.info("shutting down", metadata: ["connections": "\(connections.count)"])
        channel?.close(promise: nil)
        for handshake in pending { handshake.evict() }
        for connection in connections { connection.shutDown() }
        if connections.isEmpty { self.drained.fire() }
    }

    /// Keeps every open connection's principal current: a few times a second
    /// it compares each connection with its account as stored now (changes
    /// made by `haven-admin` on the data directory included, through the
    /// store's account revision) and with its certificate's expiry, and ends
    /// the sessions that may no longer go on (``SessionCheck``). Returns once
    /// the server has shut down and its last connection has closed.
    private func watchSessions() async {
        var revision: UInt64?
        var accounts: [String: Account] = [:]
        var revoked: Set<String> = []
        var inactivePartners: Set<String> = []
        // Cancellation (the server's task cancelled without a graceful
        // shutdown) ends the watch too: its sleeps would no longer wait.
        while !self.drained.hasFired, !Task.isCancelled {
            let connections = self.state.withLock { $0.slots.openConnections }
            if !connections.isEmpty {
                do {
                    let seen = revision
                    let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
                    let (current, changed) = try await self.store.read {
                        tx -> (UInt64, ([Account], Set<String>, Set<String>)?) in
                        let current = try tx.accountRevision()
                        guard current != seen else { return (current, nil) }
                        let accounts = try tx.accounts()
                        let organisations = Set(accounts.compactMap(AccessPolicy.organisation(of:)))
                        let inactive = try tx.load(Haven_V1_PartnerOrganisation.self, ids: Array(organisations))
                            .filter { !$0.active }.map(\.id)
                        return (current, (accounts, try tx.revokedSerials(notExpiredAt: nowMs), Set(inactive)))
                    }
                    if let (changed, serials, inactive) = changed {
                        accounts = Dictionary(changed.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
                        revoked = serials
                        inactivePartners = inactive
                        revision = current
                    }
                    let now = Date()
                    for connection in connections {
                        let principal = connection.principal
                        if let reason = SessionCheck.ending(
                            principal,
                            account: accounts[principal.id],
                            revoked: revoked,
                            inactivePartners: inactivePartners,
                            now: now
                        ) {
                            // A connection still closing from an earlier check is not ended (or audited) twice.
                            guard await connection.endSession(reason) else { continue }
                            // An enrolling connection that ran out of time is no one's session.
                            if principal.isEnrolling { continue }
                            await self.audit(
                                principalID: principal.id,
                                role: principal.role,
                                action: "session.end",
                                error: reason,
                                requestID: connection.logger[metadataKey: "connection"].map { "\($0)/-" } ?? ""
                            )
                        }
                    }
                } catch {
                    // The store is unreadable for now; writes still check their account in their transaction.
                    self.logger.warning("cannot read accounts to check open sessions", metadata: ["error": "\(error)"])
                }
            }
            await self.drained.wait(until: .now + SessionCheck.interval)
        }
    }

    private func serve(_ accepted: AcceptedConnection) async {
        self.statistics.metrics.connectionAccepted()
        var logger = self.logger
        let connectionID = self.state.withLock { state in
            state.nextConnectionID += 1
            return state.nextConnectionID
        }
        logger[metadataKey: "connection"] = "\(connectionID)"
        logger[metadataKey: "remote"] = "\(accepted.channel.remoteAddress?.description ?? "?")"

        let peer: PeerIdentity
        do {
            peer = try await accepted.peer.get()
        } catch {
            // Anyone can fail a handshake: counted always, logged once per reason every 10 s.
            let reason = HandshakeFailure.reason(error)
            self.statistics.handshakeFailed(reason: reason)
            self.handshakeLog.log(
                reason,
                "TLS handshake failed",
                level: .info,
                metadata: ["reason": "\(reason)"],
                to: logger
            )
            // The async wrapper must be finished, not just dropped.
            try? await accepted.asyncChannel.executeThenClose { _, _ in }
            return
        }

        do {
            try await accepted.asyncChannel.executeThenClose { inbound, outbound in
                let principal: Principal
                do {
                    principal = try await self.principal(for: peer)
                } catch let refusal as SessionRefusal {
                    let error = refusal.error
                    self.statistics.connectionRefused(refusal.reason)
                    logger.notice(
                        "connection refused",
                        metadata: ["code": "\(error.code)", "reason": "\(error.message)"]
                    )
                    // A certificate this deployment's CA issued, for no (enabled) account.
                    await self.audit(
                        principalID: refusal.principalID,
                        role: .unspecified,
                        action: "session.authenticate",
                        error: error,
                        requestID: "\(connectionID)/-"
                    )
                    try? await outbound.write(
                        try FrameEncoder().encode(Haven_V1_ServerEnvelope.goAway(lastCallID: 0, reason: error))
                    )
                    return
                } catch {
                    // The store could not be read (it logs why): nothing was decided about this
                    // certificate, so the client is told to come back, not refused for good.
                    // (A go-away carries a code and a message, no RetryInfo.)
                    let unavailable = HavenError(
                        code: .unavailable,
                        message: "cannot check this certificate now: the server's storage is unavailable; retry shortly"
                    )
                    self.statistics.connectionRefused(.storageUnavailable)
                    self.refusalLog.log(
                        RefusalReason.storageUnavailable.rawValue,
                        "connection refused: the store could not be read to authenticate it",
                        level: .warning,
                        metadata: ["error": "\((error as? HavenError)?.message ?? "\(type(of: error))")"],
                        to: logger
                    )
                    try? await outbound.write(
                        try FrameEncoder().encode(Haven_V1_ServerEnvelope.goAway(lastCallID: 0, reason: unavailable))
                    )
                    return
                }
                logger[metadataKey: "principal"] = "\(principal.id)"

                let connection = ServerConnection(
                    channel: accepted.channel,
                    outbound: outbound,
                    principal: principal,
                    configuration: self.configuration,
                    router: self.router,
                    logger: logger,
                    statistics: self.statistics,
                    tracer: self.tracer
                )
                let key = ObjectIdentifier(connection)
                let refused = self.state.withLock {
                    $0.slots.admit(key, connection, enrolling: principal.isEnrolling)
                }
                if let reason = refused {
                    let refusal =
                        switch reason {
                        case .shuttingDown: HavenError(code: .unavailable, message: "server shutting down")
                        case .tooManyEnrolling:
                            HavenError.exhausted(
                                "too many connections waiting to enrol; retry later",
                                retryAfterMs: 1000
                            )
                        default: HavenError.exhausted("too many connections; retry later", retryAfterMs: 1000)
                        }
                    self.statistics.connectionRefused(reason)
                    self.refusalLog.log(
                        reason.rawValue,
                        "connection refused",
                        level: .notice,
                        metadata: ["reason": "\(refusal.message)"],
                        to: logger
                    )
                    try? await outbound.write(
                        try FrameEncoder().encode(Haven_V1_ServerEnvelope.goAway(lastCallID: 0, reason: refusal))
                    )
                    return
                }
                self.statistics.connectionOpened()
                defer {
                    self.statistics.connectionClosed()
                    let drained = self.state.withLock { $0.slots.closed(key) }
                    if drained { self.drained.fire() }
                }
                logger.debug("connection open")
                await connection.run(inbound: inbound)
            }
        } catch {
            logger.debug("connection closed with an error", metadata: ["error": "\(HandshakeFailure.reason(error))"])
        }
    }

    /// Appends an audit entry for a refused or ended session.
    private func audit(
        principalID: String,
        role: Haven_V1_Role,
        action: String,
        error: HavenError,
        requestID: String
    )
        async
    {
        let entry = NewAuditEntry(
            atUnixMs: Int64((Date().timeIntervalSince1970 * 1000).rounded()),
            principalID: principalID,
            principalRole: role,
            action: action,
            outcome: error.code.statusCode.wire,
            requestID: requestID,
            detail: error.message
        )
        await self.store.audit(entry, logger: self.logger)
    }

    /// Why a verified certificate may not open a session, and whom the
    /// audit entry names (the account the certificate was issued for, or its serial).
    private struct SessionRefusal: Error {
        var error: HavenError
        var principalID: String
        var reason: RefusalReason = .unknownCertificate
    }

    /// The principal of a connection: for a verified client certificate, the
    /// enabled account it was issued to, found by its serial and checked by
    /// its public key (never by its common name); without a certificate, an
    /// enrolling connection that may only enrol, for a short time.
    private func principal(for peer: PeerIdentity) async throws -> Principal {
        guard let der = peer.certificateDER else {
            return .enrolling(until: Date().addingTimeInterval(SessionCheck.enrollingTime))
        }
        let certificate: Certificate
        do {
            certificate = try Certificate(derEncoded: der)
        } catch {
            throw SessionRefusal(
                error: HavenError(code: .unauthenticated, message: "unreadable client certificate"),
                principalID: ""
            )
        }
        let serial = certificate.serialHex
        let (credential, account, partnerActive) = try await self.store.read { tx in
            let credential = try tx.credential(serial: serial)
            let account = try credential.flatMap { try tx.account(id: $0.accountID) }
            var partnerActive = true
            if let organisation = account.flatMap(AccessPolicy.organisation(of:)) {
                partnerActive = try tx.load(Haven_V1_PartnerOrganisation.self, id: organisation)?.active != false
            }
            return (credential, account, partnerActive)
        }
        func refuse(_ message: String, _ reason: RefusalReason) -> SessionRefusal {
            SessionRefusal(
                error: HavenError(code: .unauthenticated, message: message),
                principalID: credential?.accountID ?? "certificate:\(serial)",
                reason: reason
            )
        }
        guard let credential, credential.publicKeySHA256 == certificate.publicKeySHA256 else {
            throw refuse("this certificate was not issued to any account of this deployment", .unknownCertificate)
        }
        guard !credential.isRevoked else { throw refuse("certificate revoked; ask your administrator", .revoked) }
        guard let account else { throw refuse("no account for this certificate", .unknownCertificate) }
        guard account.enabled else { throw refuse("account disabled", .accountDisabled) }
        guard partnerActive else { throw refuse("partner organisation deactivated", .partnerDeactivated) }
        return Principal(
            account: account,
            certificateExpiresAt: certificate.notValidAfter,
            credentialSerial: serial
        )
    }
}
