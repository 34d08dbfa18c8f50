import Foundation
import HavenProtocol
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// Why a call failed, with what the retry logic needs to know.
struct CallFailure: Error {
    var error: HavenError
    /// True when the server certainly did not process the call (never sent,
    /// or beyond a go-away's last call id): always safe to send again.
    var notProcessed: Bool
    /// True when no retry can help (the server refused the credentials, the
    /// certificates do not verify): the pool stops trying at once.
    var permanent = false
}

/// One TLS connection to the server, multiplexing many calls by call id.
final class ClientConnection: Sendable {
    private enum Waiter {
        case unary(CheckedContinuation<Haven_V1_CallEnd, any Error>)
        case stream(AsyncThrowingStream<Data, any Error>.Continuation)
    }

    private struct State {
        var nextCallID: UInt64 = 1
        var calls: [UInt64: Waiter] = [:]
        /// The unary calls' deadlines (one event-loop timer at a time).
        var deadlines = CallDeadlines()
        /// Calls holding one of the server's `max_concurrent_calls` slots.
        var slotsTaken = 0
        var slotWaiters: [(token: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        var nextToken: UInt64 = 0

        /// Removes a call and passes its slot to the next waiter, if any.
        mutating func removeCall(_ callID: UInt64) -> (Waiter?, CheckedContinuation<Void, any Error>?) {
            guard let waiter = self.calls.removeValue(forKey: callID) else { return (nil, nil) }
            self.deadlines.remove(callID)
            if !self.slotWaiters.isEmpty { return (waiter, self.slotWaiters.removeFirst().continuation) }
            self.slotsTaken -= 1
            return (waiter, nil)
        }
        var hello: CheckedContinuation<Haven_V1_ServerHello, any Error>?
        var limits = Haven_V1_ConnectionLimits()
        /// The server's `max_concurrent_calls` (100 when it names none).
        var maximumCalls: Int { self.limits.maxConcurrentCalls == 0 ? 100 : Int(self.limits.maxConcurrentCalls) }
        /// Set once the connection may take no new call.
        var closedReason: HavenError?
        /// The buffer call starts are encoded into, in order under the lock;
        /// its memory is reused once the channel has written the previous frame.
        var outgoing = ByteBuffer()
    }

    private let state = Mutex(State())
    /// Frames queued for the server and not yet handed to the channel, in the
    /// order they were queued, and whether a task on the channel's event loop
    /// will hand them over (``sendUnsent()``). Its own lock, held only to
    /// append or take, so that the event loop never waits for a call's start.
    private let unsent = Mutex<(frames: ByteBuffer, scheduled: Bool)>((ByteBuffer(), false))
    /// False once `closedReason` is set (under the lock): the pool's check
    /// for each call, without the lock its calls' starts and ends take.
    private let accepting = Atomic<Bool>(true)
    let channel: any Channel
    private let encoder: FrameEncoder

    private init(channel: any Channel, maximumFrame: Int) {
        self.channel = channel
        self.encoder = FrameEncoder(maximumPayloadLength: maximumFrame)
    }

    /// Connects, completes TLS (verifying the server against the deployment
    /// CA and host name) and the hello exchange.
    static func connect(
        _ configuration: HavenClientConfiguration,
        group: any EventLoopGroup
    ) async throws -> ClientConnection {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv13
        tls.certificateVerification = .fullVerification
        tls.trustRoots = .certificates(configuration.credentials.trustRoots)
        // While enrolling there is no client certificate yet.
        if let key = configuration.credentials.privateKey {
            tls.certificateChain = configuration.credentials.certificateChain.map { .certificate($0) }
            tls.privateKey = .privateKey(key)
        }
        tls.applicationProtocols = [HavenWire.alpnIdentifier]
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: tls)
        } catch {
            throw CallFailure(
                error: HavenError(
                    code: .invalidArgument,
                    message: "unusable TLS credentials: \(error)",
                    source: .client
                ),
                notProcessed: true
            )
        }
        let hostname = configuration.serverHostname ?? configuration.host
        let address = Self.display(host: configuration.host, port: configuration.port)
        // An IP address is not a server name: no SNI, and NIOSSL checks the
        // certificate's IP address entries against the socket's address.
        let isAddress = (try? SocketAddress(ipAddress: hostname, port: 0)) != nil
        let serverName = isAddress ? nil : hostname
        let handshake = group.next().makePromise(of: Void.self)
        let reader = FrameRouter()
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(.init(configuration.connectTimeout))
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(try NIOSSLClientHandler(context: context, serverHostname: serverName))
                        try sync.addHandler(ServerIdentityCheck(expectedName: hostname, promise: handshake))
                        try sync.addHandler(ByteToMessageHandler(FrameDecoder(maximumPayloadLength: 64 << 20)))
                        try sync.addHandler(reader)
                    }
                }
                .connect(host: configuration.host, port: configuration.port).get()
        } catch {
            handshake.fail(error)
            let cause = ConnectionDiagnosis.cause(of: error, hostname: hostname)
            throw CallFailure(
                error: HavenError(
                    code: .unavailable,
                    message: "cannot connect to \(address): \(cause.text)",
                    source: .transport
                ),
                notProcessed: true,
                permanent: cause.permanent
            )
        }
        channel.closeFuture.whenComplete { _ in
            handshake.fail(
                HavenError(
                    code: .unavailable,
                    message: "connection closed during the TLS handshake",
                    source: .transport
                )
            )
        }
        let timeout = channel.eventLoop.scheduleTask(in: .init(configuration.connectTimeout)) {
            handshake.fail(HavenError(code: .unavailable, message: "TLS handshake timed out", source: .transport))
            reader.detach(HavenError(code: .unavailable, message: "no hello answer in time", source: .transport))
            channel.close(promise: nil)
        }
        do {
            try await handshake.futureResult.get()
        } catch {
            timeout.cancel()
            channel.close(promise: nil)
            let cause = ConnectionDiagnosis.cause(of: error, hostname: hostname)
            throw CallFailure(
                error: HavenError(
                    code: cause.permanent ? .unauthenticated : .unavailable,
                    message: "TLS with \(address) failed: \(cause.text)",
                    source: .transport
                ),
                notProcessed: true,
                permanent: cause.permanent
            )
        }
        let connection = ClientConnection(channel: channel, maximumFrame: Frame.defaultMaximumPayloadLength)
        reader.attach(connection)
        do {
            let hello = try await connection.hello(agent: configuration.clientAgent)
            timeout.cancel()
            connection.state.withLock { $0.limits = hello.limits }
            return connection
        } catch {
            timeout.cancel()
            channel.close(promise: nil)
            // Under TLS 1.3 a refused client certificate shows only now, as an
            // alert on the first read; a refused account, as a go-away.
            let cause = ConnectionDiagnosis.cause(of: error, hostname: hostname)
            var failure =
                (error as? HavenError)
                ?? HavenError(code: .unavailable, message: cause.text, source: .transport)
            if cause.permanent, failure.code == .unavailable { failure.code = .unauthenticated }
            failure.message = "\(address) refused the connection: \(cause.text)"
            throw CallFailure(error: failure, notProcessed: true, permanent: cause.permanent)
        }
    }

    /// `host:port`, with an IPv6 address in brackets.
    static func display(host: String, port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as HavenError: error.message
        case let error as NIOSSLError: "\(error)"
        case let error as BoringSSLError: "\(error)"
        case let error as IOError: "\(error)"
        default: "\(error)"
        }
    }

    private func hello(agent: String) async throws -> Haven_V1_ServerHello {
        try await withCheckedThrowingContinuation { continuation in
            let closed = self.state.withLock { state -> HavenError? in
                if let reason = state.closedReason { return reason }
                state.hello = continuation
                return nil
            }
            if let closed { return continuation.resume(throwing: closed) }
            self.write(.hello(clientAgent: agent))
        }
    }

    /// Waits for one of the server's concurrent-call slots on this connection,
    /// so the client never exceeds `max_concurrent_calls`.
    private func acquireSlot() async throws {
        // The usual case, a slot free and nobody waiting for one, takes it
        // without suspending the task (a suspension and a resumption through
        // the executor for every call, and one more time the lock is taken).
        let waiting = try self.state.withLock { state throws(CallFailure) -> UInt64? in
            if let reason = state.closedReason { throw CallFailure(error: reason, notProcessed: true) }
            if Task.isCancelled { throw Self.cancelled }
            if state.slotWaiters.isEmpty && state.slotsTaken < state.maximumCalls {
                state.slotsTaken += 1
                return nil
            }
            state.nextToken += 1
            return state.nextToken
        }
        guard let token = waiting else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let result: Result<Void, any Error>? = self.state.withLock { state in
                    if let reason = state.closedReason {
                        return .failure(CallFailure(error: reason, notProcessed: true))
                    }
                    if Task.isCancelled { return .failure(Self.cancelled) }
                    if state.slotsTaken < state.maximumCalls {
                        state.slotsTaken += 1
                        return .success(())
                    }
                    state.slotWaiters.append((token, continuation))
                    return nil
                }
                if let result { continuation.resume(with: result) }
            }
        } onCancel: {
            let waiter = self.state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard let index = state.slotWaiters.firstIndex(where: { $0.token == token }) else { return nil }
                return state.slotWaiters.remove(at: index).continuation
            }
            waiter?.resume(throwing: Self.cancelled)
        }
    }

    private static var cancelled: CallFailure {
        CallFailure(
            error: HavenError(code: .cancelled, message: "cancelled by the caller", source: .client),
            notProcessed: true
        )
    }

    /// Gives back a slot taken by ``acquireSlot()`` for a call that never started.
    private func releaseUnusedSlot() {
        let next = self.state.withLock { state -> CheckedContinuation<Void, any Error>? in
            if !state.slotWaiters.isEmpty { return state.slotWaiters.removeFirst().continuation }
            state.slotsTaken -= 1
            return nil
        }
        next?.resume()
    }

    /// Takes no new call from now on, for the first `reason` given (under
    /// the lock); the pool's check (``isUsable``) sees it without the lock.
    private func stopTakingCalls(_ state: inout State, _ reason: HavenError) {
        if state.closedReason == nil { state.closedReason = reason }
        self.accepting.store(false, ordering: .releasing)
    }

    /// Whether new calls may use this connection.
    var isUsable: Bool {
        self.channel.isActive && self.accepting.load(ordering: .acquiring)
    }

    /// Calls in flight on this connection.
    var callsInFlight: Int { self.state.withLock { $0.calls.count } }

    // MARK: Calls

    /// Runs a unary call until its end, its deadline or the task's cancellation.
    func unary(
        method: String,
        payload: Data,
        deadline: ContinuousClock.Instant,
        traceContext: [Haven_V1_TraceHeader] = []
    ) async throws -> Haven_V1_CallEnd {
        try await self.acquireSlot()
        let remaining = deadline - .now
        guard remaining > .zero else {
            self.releaseUnusedSlot()
            throw CallFailure(
                error: HavenError(code: .deadlineExceeded, message: "deadline exceeded", source: .client),
                notProcessed: true
            )
        }
        let started = Mutex<UInt64?>(nil)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation {
                (continuation: CheckedContinuation<Haven_V1_CallEnd, any Error>) in
                switch self.begin(
                    .unary(continuation),
                    method: method,
                    payload: payload,
                    timeout: remaining,
                    deadline: deadline,
                    credit: 0,
                    traceContext: traceContext
                ) {
                case .success(let callID):
                    started.withLock { $0 = callID }
                    if Task.isCancelled {
                        self.abandon(
                            callID,
                            HavenError(code: .cancelled, message: "cancelled by the caller", source: .client)
                        )
                    }
                case .failure(let failure):
                    continuation.resume(throwing: failure)
                }
            }
        } onCancel: {
            if let callID = started.withLock({ $0 }) {
                self.abandon(callID, HavenError(code: .cancelled, message: "cancelled by the caller", source: .client))
            }
        }
    }

    /// Starts a server-streaming call; its messages arrive on the returned stream.
    func serverStreaming(
        method: String,
        payload: Data,
        timeout: Duration?,
        initialCredit: UInt32,
        traceContext: [Haven_V1_TraceHeader] = []
    ) async throws -> (callID: UInt64, messages: AsyncThrowingStream<Data, any Error>) {
        try await self.acquireSlot()
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: Data.self)
        switch self.begin(
            .stream(continuation),
            method: method,
            payload: payload,
            timeout: timeout,
            deadline: nil,
            credit: initialCredit,
            traceContext: traceContext
        ) {
        case .success(let callID):
            continuation.onTermination = { termination in
                if case .cancelled = termination {
                    self.abandon(
                        callID,
                        HavenError(code: .cancelled, message: "cancelled by the caller", source: .client)
                    )
                }
            }
            return (callID, stream)
        case .failure(let failure):
            throw failure
        }
    }

    /// Grants a streaming call more messages.
    func grantCredit(callID: UInt64, messages: UInt32) {
        self.write(.credit(callID: callID, messages: messages))
    }

    /// Takes the next call id, registers the call and queues its start frame,
    /// all under the lock: frames leave in call-id order, as the protocol requires.
    /// Gives the slot back when the call cannot start.
    private func begin(
        _ waiter: Waiter,
        method: String,
        payload: Data,
        timeout: Duration?,
        deadline: ContinuousClock.Instant?,
        credit: UInt32,
        traceContext: [Haven_V1_TraceHeader]
    )
        -> Result<UInt64, CallFailure>
    {
        var timer: ContinuousClock.Instant?
        let result = self.state.withLock { state -> Result<UInt64, CallFailure> in
            if let reason = state.closedReason { return .failure(CallFailure(error: reason, notProcessed: true)) }
            let callID = state.nextCallID
            var envelope = Haven_V1_ClientEnvelope()
            envelope.callID = callID
            envelope.start.method = method
            envelope.start.payload = payload
            if let timeout { envelope.start.timeoutMs = HavenWire.milliseconds(roundingUp: timeout) }
            envelope.start.initialCredit = credit
            envelope.start.traceContext = traceContext
            do throws(HavenError) {
                try self.encoder.encode(envelope, into: &state.outgoing)
            } catch {
                var refusal = error
                refusal.source = .client
                return .failure(CallFailure(error: refusal, notProcessed: true))
            }
            state.nextCallID += 1
            state.calls[callID] = waiter
            if let deadline { timer = state.deadlines.add(callID, deadline: deadline) }
            // Queued in call-id order: still under the lock that gave the id.
            self.queue(state.outgoing)
            return .success(callID)
        }
        if case .failure = result { self.releaseUnusedSlot() }
        if let timer { self.setDeadlineTimer(timer) }
        return result
    }

    /// Sets a timer on the connection's event loop for `instant`
    /// (``CallDeadlines``). It holds the connection weakly: a closed
    /// connection's timer finds nothing to do.
    private func setDeadlineTimer(_ instant: ContinuousClock.Instant) {
        let delay = max(instant - .now, .zero)
        self.channel.eventLoop.scheduleTask(in: TimeAmount(delay)) { [weak self] in
            self?.deadlineTimerFired(setFor: instant)
        }
    }

    /// Abandons the calls whose deadline has passed, and sets the next timer.
    private func deadlineTimerFired(setFor instant: ContinuousClock.Instant) {
        let (due, next) = self.state.withLock { $0.deadlines.fire(setFor: instant, now: .now) }
        if let next { self.setDeadlineTimer(next) }
        for callID in due {
            self.abandon(callID, HavenError(code: .deadlineExceeded, message: "deadline exceeded", source: .client))
        }
    }

    /// Ends a call locally (deadline, cancellation) and tells the server to stop it.
    private func abandon(_ callID: UInt64, _ error: HavenError) {
        let (removed, next) = self.state.withLock { $0.removeCall(callID) }
        next?.resume()
        guard let waiter = removed else { return }
        self.write(.cancel(callID: callID))
        switch waiter {
        case .unary(let continuation): continuation.resume(throwing: CallFailure(error: error, notProcessed: false))
        case .stream(let continuation): continuation.finish(throwing: CallFailure(error: error, notProcessed: false))
        }
    }

    private func write(_ envelope: Haven_V1_ClientEnvelope) {
        let frame: ByteBuffer
        do {
            frame = try self.encoder.encode(envelope)
        } catch {
            return self.fail(error, notProcessed: false)
        }
        self.queue(frame)
    }

    /// Queues `frame` behind those unsent. Frames leave through one task on
    /// the event loop at a time: the calls that start while it waits to run
    /// go out with it, in one write and one flush (one run of TLS records and
    /// one system call for them all), in the order they were queued.
    private func queue(_ frame: ByteBuffer) {
        let schedule = self.unsent.withLock { unsent -> Bool in
            if unsent.frames.readableBytes == 0 {
                unsent.frames = frame
            } else {
                unsent.frames.writeImmutableBuffer(frame)
            }
            guard !unsent.scheduled else { return false }
            unsent.scheduled = true
            return true
        }
        if schedule { self.channel.eventLoop.execute { self.sendUnsent() } }
    }

    /// On the event loop: hands every frame queued so far to the channel.
    private func sendUnsent() {
        let frames = self.unsent.withLock { unsent -> ByteBuffer in
            unsent.scheduled = false
            defer { unsent.frames = ByteBuffer() }
            return unsent.frames
        }
        if frames.readableBytes > 0 { self.channel.writeAndFlush(frames, promise: nil) }
    }

    // MARK: Inbound

    func receive(_ envelope: Haven_V1_ServerEnvelope) {
        switch envelope.kind {
        case .hello(let hello):
            let waiter = self.state.withLock { state in
                defer { state.hello = nil }
                return state.hello
            }
            waiter?.resume(returning: hello)
        case .message(let message):
            let waiter = self.state.withLock { $0.calls[envelope.callID] }
            if case .stream(let continuation) = waiter { continuation.yield(message.payload) }
        case .end(let end):
            let (removed, next) = self.state.withLock { $0.removeCall(envelope.callID) }
            next?.resume()
            guard let waiter = removed else { return }
            switch waiter {
            case .unary(let continuation):
                continuation.resume(returning: end)
            case .stream(let continuation):
                if let error = end.error {
                    continuation.finish(throwing: CallFailure(error: error, notProcessed: false))
                } else {
                    continuation.finish()
                }
            }
        case .goAway(let away):
            self.goAway(away)
        case .pong, .none:
            break
        }
    }

    private func goAway(_ away: Haven_V1_GoAway) {
        var reason = away.reason
        reason.source = .transport
        let unprocessed = self.state.withLock { state -> [(UInt64, Waiter)] in
            self.stopTakingCalls(&state, reason)
            let beyond = state.calls.filter { $0.key > away.lastCallID }
            for (id, _) in beyond {
                state.calls.removeValue(forKey: id)
                state.deadlines.remove(id)
            }
            state.slotsTaken -= beyond.count
            return Array(beyond)
        }
        let error = HavenError(code: .unavailable, message: "not processed: \(away.message)", source: .transport)
        for (_, waiter) in unprocessed { Self.fail(waiter, CallFailure(error: error, notProcessed: true)) }
        let (helloWaiter, slotWaiters) = self.state.withLock { state in
            defer {
                state.hello = nil
                state.slotWaiters.removeAll()
            }
            return (state.hello, state.slotWaiters.map(\.continuation))
        }
        helloWaiter?.resume(throwing: reason)
        for waiter in slotWaiters { waiter.resume(throwing: CallFailure(error: reason, notProcessed: true)) }
    }

    /// Fails every call in flight (the connection broke) and closes.
    func fail(_ error: any Error, notProcessed: Bool) {
        let cause = ConnectionDiagnosis.cause(of: error, hostname: "the server")
        let reason = HavenError(
            code: cause.permanent ? .unauthenticated : .unavailable,
            message: "connection lost: \(cause.text)",
            source: .transport
        )
        let (waiters, hello, slotWaiters) = self.state.withLock { state in
            self.stopTakingCalls(&state, reason)
            defer {
                state.calls.removeAll()
                state.deadlines.removeAll()
                state.slotsTaken = 0
                state.hello = nil
                state.slotWaiters.removeAll()
            }
            return (Array(state.calls.values), state.hello, state.slotWaiters.map(\.continuation))
        }
        for waiter in waiters { Self.fail(waiter, CallFailure(error: reason, notProcessed: notProcessed)) }
        hello?.resume(throwing: reason)
        for waiter in slotWaiters { waiter.resume(throwing: CallFailure(error: reason, notProcessed: true)) }
        self.channel.close(promise: nil)
    }

    private static func fail(_ waiter: Waiter, _ failure: CallFailure) {
        switch waiter {
        case .unary(let continuation): continuation.resume(throwing: failure)
        case .stream(let continuation): continuation.finish(throwing: failure)
        }
    }

    /// Stops taking calls and closes once the calls in flight have ended.
    func close() {
        self.state.withLock { state in
            self.stopTakingCalls(&state, HavenError(code: .unavailable, message: "client closed", source: .client))
        }
        self.channel.close(promise: nil)
    }
}

/// Completes the handshake promise only for the right server: ALPN `haven/1`,
/// and a certificate naming the host name dialled.
///
/// NIOSSL has already verified the chain against the deployment CA and the
/// name per RFC 6125, but that check also accepts an IP-address entry
/// matching the socket's address: a certificate for another server on the
/// same address would pass. When a DNS name was dialled, this also requires a
/// DNS entry of the certificate to match it.
private final class ServerIdentityCheck: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    let expectedName: String
    let promise: EventLoopPromise<Void>

    init(expectedName: String, promise: EventLoopPromise<Void>) {
        self.expectedName = expectedName.lowercased()
        self.promise = promise
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event {
            if let refusal = self.refusal(negotiated: negotiated, context: context) {
                // Not the server dialled: no retry can change that.
                self.promise.fail(HavenError(code: .unauthenticated, message: refusal, source: .transport))
                context.close(promise: nil)
            } else {
                self.promise.succeed(())
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func refusal(negotiated: String?, context: ChannelHandlerContext) -> String? {
        guard negotiated == HavenWire.alpnIdentifier else { return "server did not negotiate ALPN haven/1" }
        let isAddress = (try? SocketAddress(ipAddress: self.expectedName, port: 0)) != nil
        if isAddress { return nil }
        guard
            let handler = try? context.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self),
            let certificate = handler.peerCertificate
        else { return "server presented no certificate" }
        for name in certificate._subjectAlternativeNames() where name.nameType == .dnsName {
            let dnsName = String(decoding: name.contents, as: UTF8.self).lowercased()
            if Self.matches(dnsName, self.expectedName) { return nil }
        }
        return "server certificate is not valid for \(self.expectedName)"
    }

    /// Exact match, or a wildcard covering exactly the first label.
    static func matches(_ pattern: String, _ name: String) -> Bool {
        if pattern == name { return true }
        guard pattern.hasPrefix("*."), let dot = name.firstIndex(of: ".") else { return false }
        return name[name.index(after: dot)...] == pattern.dropFirst(2) && name[..<dot].count > 0
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.promise.fail(error)
        context.fireErrorCaught(error)
    }
}

/// Hands decoded envelopes to the connection; fails it on errors and close.
final class FrameRouter: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    private struct State {
        var connection: ClientConnection?
        /// Why the channel ended before a connection was attached, if it did.
        var ended: (any Error)?
    }

    private let state = Mutex(State())

    /// Routes to `connection` from now on; fails it at once if the channel already ended.
    func attach(_ connection: ClientConnection) {
        let ended = self.state.withLock { state -> (any Error)? in
            state.connection = connection
            return state.ended
        }
        if let ended { connection.fail(ended, notProcessed: true) }
    }

    /// Fails the attached connection (the connect timed out).
    func detach(_ error: HavenError) {
        self.end(error)
    }

    private func end(_ error: any Error) {
        let connection = self.state.withLock { state -> ClientConnection? in
            if state.ended == nil { state.ended = error }
            return state.connection
        }
        connection?.fail(error, notProcessed: false)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let payload = Self.unwrapInboundIn(data)
        guard let connection = self.state.withLock({ $0.connection }) else { return }
        do {
            connection.receive(try Haven_V1_ServerEnvelope(decodingPayload: payload))
        } catch {
            connection.fail(error, notProcessed: false)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.end(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.end(HavenError(code: .unavailable, message: "connection closed"))
        context.fireChannelInactive()
    }
}
