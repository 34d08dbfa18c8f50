import Foundation
import HavenProtocol
import Logging
import NIOCore
import Synchronization
import Tracing

/// One client connection after its TLS handshake: reads envelopes, runs
/// calls concurrently, enforces the connection's limits and timeouts, and goes
/// away cleanly.
package final class ServerConnection: Sendable {
    private let channel: any Channel
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    /// Who the connection serves (as authenticated at its handshake).
    let principal: Principal
    private let configuration: ServerConfiguration
    private let router: Router
    let logger: Logger
    private let statistics: ServerStatistics
    private var metrics: ServerMetrics { self.statistics.metrics }
    private let tracer: any Tracer
    private let encoder: FrameEncoder
    /// The connection's buffer for outgoing frames, lent to one writer at a
    /// time (a concurrent writer encodes into a buffer of its own): its memory
    /// is reused once the channel has written the previous frame.
    private let outgoing = Mutex<ByteBuffer?>(ByteBuffer())
    private let state: Mutex<ConnectionState>
    /// Wakes the watchdog when the server shuts down, or a call's deadline
    /// comes before its next wake.
    private let watchdogSignal = WatchdogSignal()
    /// Fired once the connection is closed and every call's end is written.
    private let endsWritten = Signal()
    /// Fired when the last call in flight of a going-away connection ends.
    private let drained = Signal()

    package init(
        channel: any Channel,
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
        principal: Principal,
        configuration: ServerConfiguration,
        router: Router,
        logger: Logger,
        statistics: ServerStatistics = ServerStatistics(),
        tracer: any Tracer = NoOpTracer()
    ) {
        self.statistics = statistics
        self.tracer = tracer
        self.channel = channel
        self.outbound = outbound
        self.principal = principal
        self.configuration = configuration
        self.router = router
        self.logger = logger
        self.encoder = FrameEncoder(maximumPayloadLength: configuration.maxFrameBytes)
        self.state = Mutex(ConnectionState(now: .now))
    }

    /// Serves the connection until it closes.
    package func run(inbound: NIOAsyncChannelInboundStream<ByteBuffer>) async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.watchdog() }
            do {
                for try await payload in inbound {
                    self.metrics.frameReceived(bytes: Frame.headerLength + payload.readableBytes)
                    let envelope: Haven_V1_ClientEnvelope
                    do {
                        envelope = try Haven_V1_ClientEnvelope(decodingPayload: payload)
                    } catch {
                        throw HavenError(code: .invalidArgument, message: "protocol violation: undecodable envelope")
                    }
                    if let call = try await self.receive(envelope) {
                        group.addTask { await self.run(call) }
                    }
                }
            } catch let error as HavenError {
                self.logger.notice(
                    "connection failed",
                    metadata: ["code": "\(error.code)", "reason": "\(error.message)"]
                )
                await self.sendGoAway(error)
            } catch {
                self.logger.debug("connection ended", metadata: ["error": "\(type(of: error))"])
            }
            await self.close()
            group.cancelAll()
        }
    }

    /// Ends the connection at once because its principal may no longer use
    /// it: a go-away carrying `reason`, every call in flight (streams
    /// included) ends with `reason`, and the connection closes.
    ///
    /// - Returns: Whether this call ended it (false when it had already ended or closed).
    @discardableResult
    func endSession(_ reason: HavenError) async -> Bool {
        guard self.state.withLock({ $0.endSession(reason) }) else { return false }
        self.logger.notice("session ended", metadata: ["reason": "\(reason.message)"])
        await self.sendGoAway(reason)
        await self.close()
        return true
    }

    /// Starts a graceful shutdown: go-away now, calls in flight get the grace
    /// period, then the connection closes.
    func shutDown() {
        self.watchdogSignal.shutDown()
    }

    // MARK: Reading

    /// A call accepted for running.
    private struct AcceptedCall: Sendable {
        var id: UInt64
        var method: String
        var entry: Router.Entry
        var payload: Data
        var control: CallControl
        var traceContext: [Haven_V1_TraceHeader]
    }

    private func receive(_ envelope: Haven_V1_ClientEnvelope) async throws -> AcceptedCall? {
        // Anything but a hello before the hello violates the protocol (PROTOCOL.md §5.1).
        if case .hello = envelope.kind {
        } else if self.state.withLock({ if case .awaitingHello = $0.phase { true } else { false } }) {
            throw HavenError(code: .invalidArgument, message: "protocol violation: a frame before hello")
        }
        switch envelope.kind {
        case .hello(let hello):
            try await self.receiveHello(hello, callID: envelope.callID)
            return nil
        case .start(let start):
            return try await self.receiveStart(start, callID: envelope.callID)
        case .cancel:
            try self.requireCall(envelope.callID, "cancel")
            let control = self.state.withLock { $0.calls[envelope.callID] }
            control?.cancel()
            return nil
        case .credit(let credit):
            try self.requireCall(envelope.callID, "credit")
            let control = self.state.withLock { $0.calls[envelope.callID] }
            control?.addCredit(Int(credit.messages))
            return nil
        case .ping(let ping):
            guard envelope.callID == 0 else {
                throw HavenError(
                    code: .invalidArgument,
                    message: "protocol violation: ping on call id \(envelope.callID)"
                )
            }
            await self.send(.pong(ping.opaque))
            return nil
        case .none:
            throw HavenError(code: .invalidArgument, message: "protocol violation: envelope with no kind")
        }
    }

    private func requireCall(_ callID: UInt64, _ kind: String) throws {
        guard callID != 0 else {
            throw HavenError(code: .invalidArgument, message: "protocol violation: \(kind) on call id 0")
        }
    }

    private func receiveHello(_ hello: Haven_V1_Hello, callID: UInt64) async throws {
        let first = self.state.withLock { state -> Bool in
            guard case .awaitingHello = state.phase else { return false }
            state.phase = .open
            return true
        }
        guard first, callID == 0 else {
            throw HavenError(
                code: .invalidArgument,
                message: "protocol violation: hello must be the first frame, on call id 0"
            )
        }
        if let violation = HavenFieldLimits.violation(in: hello) {
            throw HavenError(
                code: .invalidArgument,
                message: "protocol violation: hello.\(violation.field) is \(violation.problem)"
            )
        }
        guard let version = HavenWire.negotiate(offered: hello.protocolVersions) else {
            // The client's offer is not echoed: it knows what it sent.
            throw HavenError(
                code: .failedPrecondition,
                message: "no shared protocol version: server speaks \(HavenWire.supportedProtocolVersions)"
            )
        }
        self.logger.info(
            "client hello",
            metadata: [
                "agent": "\(LogText.escaped(hello.clientAgent))", "version": "\(version)",
                "principal": "\(self.principal.id)",
            ]
        )
        await self.send(
            .hello(
                protocolVersion: version,
                serverAgent: "havend/\(HavenRelease.version)",
                limits: self.configuration.connectionLimits
            )
        )
    }

    private func receiveStart(_ start: Haven_V1_CallStart, callID: UInt64) async throws -> AcceptedCall? {
        guard callID != 0 else {
            throw HavenError(code: .invalidArgument, message: "protocol violation: call started on call id 0")
        }
        let entry = self.router.entry(for: start.method)
        var credits = Int(start.initialCredit == 0 ? 16 : start.initialCredit)
        var timeout: Duration? = start.timeoutMs == 0 ? nil : .milliseconds(Int64(clamping: start.timeoutMs))
        switch entry {
        case .unary:
            credits = 0
            timeout = min(timeout ?? self.configuration.defaultTimeout, self.configuration.maxTimeout)
        case .serverStreaming, nil:
            break  // a stream without a timeout runs until cancelled (a followed feed)
        }
        let deadline = timeout.map { ContinuousClock.now + $0 }
        let decision = self.state.withLock {
            $0.start(
                callID: callID,
                credits: credits,
                deadline: deadline,
                maxConcurrentCalls: self.configuration.maxConcurrentCalls
            )
        }
        switch decision {
        case .violation(let error):
            throw error
        case .ignore:
            return nil
        case .refuse(let error):
            self.metrics.callRefused(method: start.method, code: error.code.statusCode)
            await self.send(.end(callID: callID, error: error))
            return nil
        case .start(let control, let wakeWatchdog):
            if wakeWatchdog { self.watchdogSignal.replan() }
            // A connection without a client certificate may enrol and do nothing else.
            if self.principal.isEnrolling, start.method != MethodCatalog.EnrollmentService.enroll.fullName {
                await self.refuse(
                    callID,
                    start.method,
                    HavenError(
                        code: .unauthenticated,
                        message:
                            "this connection presented no client certificate: it may only call \(MethodCatalog.EnrollmentService.enroll.fullName)"
                    )
                )
                return nil
            }
            guard let entry else {
                await self.refuse(
                    callID,
                    start.method,
                    HavenError(
                        code: .unimplemented,
                        message: "unknown method \(LogText.escaped(start.method, limit: 200))"
                    )
                )
                return nil
            }
            if let violation = HavenFieldLimits.violation(in: start) {
                await self.refuse(
                    callID,
                    start.method,
                    HavenError(code: .invalidArgument, message: "call_start.\(violation.field) is \(violation.problem)")
                )
                return nil
            }
            return AcceptedCall(
                id: callID,
                method: start.method,
                entry: entry,
                payload: start.payload,
                control: control,
                traceContext: start.traceContext
            )
        }
    }

    // MARK: Calls

    private enum Outcome: Sendable {
        case completed(Data?)
        case failed(HavenError)
        /// Cancelled by the client, by the server (the control's reason) or by its deadline.
        case cancelled
    }

    private func run(_ call: AcceptedCall) async {
        let deadline = call.control.deadline ?? .now + .seconds(100 * 365 * 24 * 3600)
        // The call's metadata joins each line the call logs (CallLogHandler),
        // instead of being set on a copy of the connection's handler, which
        // may format it all again whether or not anything is logged.
        var logger = self.logger
        logger.handler = CallLogHandler(
            base: self.logger.handler,
            call: [
                "call": "\(call.id)",
                "method": "\(call.method)",
                // The request id the audit trail names the call by: every line of the call carries it.
                "request": "\(self.logger[metadataKey: "connection"].map { "\($0)" } ?? "-")/\(call.id)",
            ]
        )
        let context = CallContext(
            principal: self.principal,
            method: call.method,
            callID: call.id,
            deadline: deadline,
            logger: logger,
            control: call.control
        )
        let started = ContinuousClock.now
        self.statistics.callStarted()
        // The call's span continues the caller's trace when its start carried one.
        var traceContext = ServiceContext.topLevel
        if !call.traceContext.isEmpty {
            self.tracer.extract(call.traceContext, into: &traceContext, using: TraceHeaderExtractor())
        }
        let span = self.tracer.startSpan(call.method, context: traceContext, ofKind: .server)
        // Attributes only for a span that records them (setting one builds a
        // dictionary, even on a tracer that drops it).
        if span.isRecording {
            span.attributes["rpc.system"] = "haven"
            span.attributes["rpc.method"] = call.method
            span.attributes["haven.call_id"] = Int64(clamping: call.id)
        }

        let outcome: Outcome = await ServiceContext.withValue(span.context) {
            await self.outcome(of: call, context, logger)
        }
        let end = self.end(of: call, outcome)
        // Free the slot before the end goes out: a client that starts its next
        // call as soon as it reads this end must find the slot free.
        self.finish(call.id)
        await self.send(end)
        self.endWritten()
        let code = StatusCode(wire: end.end.code)
        let duration = ContinuousClock.now - started
        self.statistics.callEnded(method: call.method, code: code, duration: duration)
        if span.isRecording { span.attributes["rpc.haven.status_code"] = code.rawValue }
        if ServerStatistics.serverFaults.contains(code) {
            span.setStatus(SpanStatus(code: .error, message: code.description))
        }
        span.end()
        logger.debug("call ended", metadata: ["code": "\(code)", "duration": "\(duration)"])
    }

    /// Runs a call's handler against its deadline and cancellation: the
    /// first of the handler returning and the call being cancelled (by the
    /// client, the server, or the watchdog at its deadline) decides the
    /// outcome; a cancelled handler is cancelled and waited for.
    ///
    /// The handler is the group's one task; the call's task waits on its
    /// control block, which the watchdog's deadlines and the client's cancel
    /// reach, rather than on a timer and a watcher task of its own.
    private func outcome(of call: AcceptedCall, _ context: CallContext, _ logger: Logger) async -> Outcome {
        await withTaskGroup(of: Outcome.self) { group in
            group.addTask {
                defer { call.control.handlerReturned() }
                do {
                    switch call.entry {
                    case .unary(let handler):
                        return .completed(try await handler(call.payload, context))
                    case .serverStreaming(let handler):
                        let stream = ResponseStream<Data> { payload in
                            try await call.control.consumeCredit()
                            var envelope = Haven_V1_ServerEnvelope()
                            envelope.callID = call.id
                            envelope.message.payload = payload
                            try await self.write(envelope)
                        }
                        try await handler(call.payload, context, stream)
                        return .completed(nil)
                    }
                } catch let error as HavenError {
                    return .failed(error)
                } catch is CancellationError {
                    return .cancelled
                } catch {
                    logger.error("handler failed", metadata: ["error": "\(type(of: error))"])
                    return .failed(HavenError(code: .internal, message: "internal error"))
                }
            }
            switch await call.control.waitForEnd() {
            case .returned:
                return await group.next()!
            case .cancelled:
                group.cancelAll()
                return .cancelled
            }
        }
    }

    /// The envelope that ends a call with `outcome`.
    private func end(of call: AcceptedCall, _ outcome: Outcome) -> Haven_V1_ServerEnvelope {
        let end: Haven_V1_ServerEnvelope
        switch outcome {
        case .completed(let payload?):
            var envelope = Haven_V1_ServerEnvelope()
            envelope.callID = call.id
            envelope.end.payload = payload
            end = envelope
        case .completed(nil):
            end = .endOfStream(callID: call.id)
        case .failed(let error):
            end = .end(callID: call.id, error: error)
        case .cancelled:
            let (closed, endedBecause) = self.state.withLock { state -> (Bool, HavenError?) in
                let closed = if case .closed = state.phase { true } else { false }
                return (closed, state.endedBecause)
            }
            end = .end(
                callID: call.id,
                error: call.control.reason ?? endedBecause
                    ?? (closed
                        ? HavenError(code: .unavailable, message: "server shutting down")
                        : HavenError(code: .cancelled, message: "cancelled by the client"))
            )
        }
        return end
    }

    /// Ends a call it started without running it.
    private func refuse(_ callID: UInt64, _ method: String, _ error: HavenError) async {
        self.metrics.callRefused(method: method, code: error.code.statusCode)
        self.finish(callID)
        defer { self.endWritten() }
        await self.send(.end(callID: callID, error: error))
    }

    private func finish(_ callID: UInt64) {
        if self.state.withLock({ $0.finish(callID: callID, now: .now) }) { self.drained.fire() }
    }

    private func endWritten() {
        if self.state.withLock({ $0.endWritten() }) { self.endsWritten.fire() }
    }

    // MARK: Timers and closing

    /// Enforces the hello and idle timeouts and the calls' deadlines, and
    /// runs the graceful shutdown.
    private func watchdog() async {
        while !Task.isCancelled {
            let now = ContinuousClock.now
            self.expireCalls(now: now)
            let (phase, idleSince) = self.state.withLock { ($0.phase, $0.idleSince) }
            let wakeAt: ContinuousClock.Instant
            switch phase {
            case .closed:
                return
            case .goingAway:
                return
            case .awaitingHello:
                let helloDeadline = self.state.withLock { $0.openedAt } + self.configuration.handshakeTimeout
                if now >= helloDeadline {
                    await self.sendGoAway(
                        HavenError(code: .deadlineExceeded, message: "no hello within the handshake timeout")
                    )
                    await self.close()
                    return
                }
                // Wake in time for the idle deadline too: the hello may arrive meanwhile.
                wakeAt = min(helloDeadline, (idleSince ?? now) + self.configuration.idleTimeout)
            case .open:
                if let idleSince {
                    let idleDeadline = idleSince + self.configuration.idleTimeout
                    if now >= idleDeadline {
                        await self.sendGoAway(HavenError(code: .unavailable, message: "idle connection closed"))
                        await self.close()
                        return
                    }
                    wakeAt = idleDeadline
                } else {
                    // Calls in flight: check again after a full idle period at the earliest.
                    wakeAt = now + self.configuration.idleTimeout
                }
            }
            let sleepUntil = self.state.withLock { $0.watchdogSleeps(until: wakeAt) }
            // Whichever wakes it, the shutdown is read from the signal, which keeps it.
            await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await Task.sleep(until: sleepUntil) }
                group.addTask { _ = await self.watchdogSignal.wait() }
                await group.next()
                group.cancelAll()
            }
            self.state.withLock { $0.watchdogWoke() }
            if self.watchdogSignal.isShutDown {
                await self.drain()
                return
            }
        }
    }

    /// Ends every call whose deadline has passed, DEADLINE_EXCEEDED.
    private func expireCalls(now: ContinuousClock.Instant) {
        for call in self.state.withLock({ $0.expiredCalls(now: now) }) {
            call.cancel(reason: CallControl.deadlineExceeded)
        }
    }

    /// Graceful shutdown of this connection: a go-away; followed feeds end
    /// at once (they would never finish by themselves); other calls get the
    /// grace period.
    private func drain() async {
        await self.sendGoAway(HavenError(code: .unavailable, message: "server shutting down"))
        let feedEnd = HavenError(
            code: .unavailable,
            message: "server shutting down: resume after your last cursor on a new connection"
        )
        for call in self.state.withLock({ Array($0.calls.values) }) { call.shutDown(feedEnd) }
        let graceEnds = ContinuousClock.now + self.configuration.shutdownGrace
        // Woken by the last call's end, a call's deadline (calls keep their
        // deadlines through the grace period) or the grace period's end.
        while true {
            let now = ContinuousClock.now
            self.expireCalls(now: now)
            guard now < graceEnds, let wake = self.state.withLock({ $0.drainWake(graceEnds: graceEnds) }) else {
                break
            }
            await self.drained.wait(until: wake)
        }
        await self.close()
    }

    private func sendGoAway(_ reason: HavenError) async {
        guard let lastCallID = self.state.withLock({ $0.goAway() }) else { return }
        self.metrics.goAwaySent(code: reason.code.statusCode)
        await self.send(.goAway(lastCallID: lastCallID, reason: reason))
    }

    /// Cancels what is in flight and closes the channel once the cancelled
    /// calls have written their ends (UNAVAILABLE, or the reason the session
    /// ended) — at most a second later, should a handler not stop.
    private func close() async {
        let (calls, endsWritten) = self.state.withLock { $0.close() }
        for call in calls { call.cancel() }
        if endsWritten { self.endsWritten.fire() }
        await self.endsWritten.wait(until: .now + .seconds(1))
        self.channel.close(promise: nil)
    }

    // MARK: Writing

    private func send(_ envelope: Haven_V1_ServerEnvelope) async {
        do {
            try await self.write(envelope)
        } catch let error as HavenError where envelope.callID != 0 {
            // The response does not fit in a frame: the call fails instead.
            try? await self.write(.end(callID: envelope.callID, error: error))
        } catch {
            // The channel is closing; the client will see the connection end.
        }
    }

    private func write(_ envelope: Haven_V1_ServerEnvelope) async throws {
        var frame = self.outgoing.withLock { $0.take() } ?? ByteBuffer()
        let encoded = Result { () throws(HavenError) in try self.encoder.encode(envelope, into: &frame) }
        self.outgoing.withLock { if $0 == nil { $0 = frame } }
        try encoded.get()
        self.metrics.frameSent(bytes: frame.readableBytes)
        try await self.outbound.write(frame)
    }
}

/// Reads a propagated trace context from a call start's headers.
struct TraceHeaderExtractor: Extractor {
    func extract(key: String, from carrier: [Haven_V1_TraceHeader]) -> String? {
        carrier.first { $0.name == key }?.value
    }
}
