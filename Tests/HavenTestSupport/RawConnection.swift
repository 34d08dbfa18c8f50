import Foundation
import HavenProtocol
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import SwiftProtobuf

/// A bare protocol client for tests: sends any bytes or envelopes over
/// mutual TLS and reads envelopes one by one, so tests can play a broken or
/// hostile peer as easily as a correct one.
public final class RawConnection: Sendable {
    let channel: any Channel
    private let collector: NIOLoopBound<Collector>

    /// Connects and completes the TLS handshake.
    ///
    /// - Parameters:
    ///   - alpn: The protocols offered (the server requires `haven/1`).
    public static func connect(
        port: Int,
        credentials: TestCredentials,
        host: String = "127.0.0.1",
        serverHostname: String = "localhost",
        alpn: [String] = [HavenWire.alpnIdentifier],
        trustRootsPEM: String? = nil,
        tlsVersion: TLSVersion = .tlsv13,
        receiveBufferBytes: Int? = nil
    ) async throws -> RawConnection {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = tlsVersion
        tls.maximumTLSVersion = tlsVersion
        tls.trustRoots = .certificates(
            try NIOSSLCertificate.fromPEMBytes(Array((trustRootsPEM ?? credentials.caPEM).utf8))
        )
        // Empty PEM: no client certificate (a machine that has yet to enrol).
        if !credentials.certificatePEM.isEmpty {
            tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(credentials.certificatePEM.utf8)).map {
                .certificate($0)
            }
            tls.privateKey = .privateKey(
                try NIOSSLPrivateKey(bytes: Array(credentials.privateKeyPEM.utf8), format: .pem)
            )
        }
        tls.applicationProtocols = alpn
        let context = try NIOSSLContext(configuration: tls)
        let handshake = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Void.self)
        let collectorPromise = MultiThreadedEventLoopGroup.singleton.next().makePromise(
            of: NIOLoopBound<Collector>.self
        )
        let channel: any Channel
        do {
            var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            if let receiveBufferBytes {
                // A small window: what the server sends waits in its own buffers, not the kernel's.
                bootstrap = bootstrap.channelOption(
                    .socketOption(.so_rcvbuf),
                    value: SocketOptionValue(receiveBufferBytes)
                )
            }
            channel =
                try await bootstrap
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            try NIOSSLClientHandler(context: context, serverHostname: serverHostname)
                        )
                        try channel.pipeline.syncOperations.addHandler(HandshakeWaiter(promise: handshake))
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(FrameDecoder(maximumPayloadLength: 64 << 20))
                        )
                        let collector = Collector()
                        try channel.pipeline.syncOperations.addHandler(collector)
                        collectorPromise.succeed(NIOLoopBound(collector, eventLoop: channel.eventLoop))
                    }
                }
                .connect(host: host, port: port).get()
        } catch {
            handshake.fail(error)
            collectorPromise.fail(error)
            throw error
        }
        channel.closeFuture.whenComplete { _ in
            handshake.fail(HavenError(code: .unavailable, message: "closed during the handshake"))
        }
        do {
            try await handshake.futureResult.get()
        } catch {
            channel.close(promise: nil)
            throw error
        }
        let collector = try await collectorPromise.futureResult.get()
        return RawConnection(channel: channel, collector: collector)
    }

    private init(channel: any Channel, collector: NIOLoopBound<Collector>) {
        self.channel = channel
        self.collector = collector
    }

    /// Sends an envelope in a frame.
    public func send(_ envelope: Haven_V1_ClientEnvelope) async throws {
        try await self.write(try FrameEncoder(maximumPayloadLength: 64 << 20).encode(envelope))
    }

    /// Sends raw bytes.
    public func sendRaw(_ bytes: [UInt8]) async throws {
        try await self.write(ByteBuffer(bytes: bytes))
    }

    /// Sends `bytes` `times` times over, each write made from the channel's
    /// event loop as soon as the one before it reached the socket: the flood
    /// keeps its pace however busy Swift's cooperative threads are (a test
    /// loop awaiting each write would wait for a free thread after each).
    ///
    /// - Returns: How many writes reached the socket; fewer than `times` when
    ///   the connection closed or a write failed.
    public func flood(_ bytes: [UInt8], times: Int) async -> Int {
        let flood = Flood(channel: self.channel, buffer: ByteBuffer(bytes: bytes), times: times)
        self.channel.eventLoop.execute { flood.next(0) }
        return (try? await flood.done.futureResult.get()) ?? 0
    }

    /// Writes `buffer`; a connection the server has closed fails with what
    /// the server last said (its go-away, if it sent one), not NIO's bare
    /// "I/O on closed channel", so that a test failing there names the reason.
    private func write(_ buffer: ByteBuffer) async throws {
        do {
            try await self.channel.writeAndFlush(buffer)
        } catch ChannelError.ioOnClosedChannel {
            let collector = self.collector
            let goAway = try await self.channel.eventLoop.submit { collector.value.lastGoAway }.get()
            guard let goAway else {
                throw HavenError(
                    code: .unavailable,
                    message: "the connection is closed, and the server sent no go-away on it"
                )
            }
            let reason = goAway.reason
            throw HavenError(
                code: .unavailable,
                message: "the server closed the connection after a go-away: \(reason.code) \(reason.message)"
            )
        }
    }

    /// Sends hello and returns the server's answer.
    @discardableResult
    public func hello(versions: [UInt32] = [1]) async throws -> Haven_V1_ServerEnvelope? {
        try await self.send(.hello(clientAgent: "haven-tests/1", versions: versions))
        return try await self.next()
    }

    /// The next envelope, nil when the connection closed. Throws when none
    /// arrives within `timeout`, or the stream was broken.
    public func next(timeout: TimeAmount = .seconds(10)) async throws -> Haven_V1_ServerEnvelope? {
        let collector = self.collector
        return try await self.channel.eventLoop.flatSubmit {
            collector.value.next(timeout: timeout, eventLoop: self.channel.eventLoop)
        }.get()
    }

    /// Waits for the end of a call. Every envelope before it, of this call
    /// or another, is read and dropped: a test that needs another call's
    /// envelopes reads them with ``next(timeout:)`` before asking for this end.
    public func end(of callID: UInt64, timeout: TimeAmount = .seconds(10)) async throws -> Haven_V1_CallEnd {
        while let envelope = try await self.next(timeout: timeout) {
            if envelope.callID == callID, case .end(let end) = envelope.kind { return end }
        }
        throw HavenError(code: .unavailable, message: "connection closed before call \(callID) ended")
    }

    /// Starts a unary call and returns its end.
    public func call<Request, Response>(
        _ method: MethodDescriptor<Request, Response>,
        _ request: Request,
        id: UInt64,
        timeout: Duration? = nil
    ) async throws -> Haven_V1_CallEnd {
        try await self.send(.start(callID: id, method: method, request: request, timeout: timeout))
        return try await self.end(of: id)
    }

    /// Starts a unary call, expecting success, and decodes the response.
    public func unary<Request, Response>(
        _ method: MethodDescriptor<Request, Response>,
        _ request: Request,
        id: UInt64
    ) async throws -> Response {
        let end = try await self.call(method, request, id: id)
        if let error = end.error { throw error }
        return try Response(decodingPayload: end.payload)
    }

    /// Whether the server closed the connection within `timeout`.
    public func closed(within timeout: TimeAmount = .seconds(10)) async -> Bool {
        let deadline = NIODeadline.now() + timeout
        while NIODeadline.now() < deadline {
            do {
                if try await self.next(timeout: deadline - NIODeadline.now()) == nil { return true }
            } catch {
                return !self.channel.isActive
            }
        }
        return !self.channel.isActive
    }

    /// Stops reading from the socket (a peer that never reads its answers):
    /// the server's replies pile up in the kernel's buffers, then in its own.
    public func stopReading() async throws {
        try await self.channel.setOption(ChannelOptions.autoRead, value: false).get()
    }

    /// Whether the connection is still open.
    public var isActive: Bool { self.channel.isActive }

    public func close() async {
        try? await self.channel.close()
    }

    /// Drops the connection with a TCP reset: no close_notify, no FIN.
    /// A connection the peer has closed already has nothing left to reset.
    public func reset() async throws {
        if let socket = self.channel as? any SocketOptionProvider {
            do {
                try await socket.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
            } catch ChannelError.ioOnClosedChannel {
                return
            }
        }
        try? await self.channel.close(mode: .all)
    }
}

/// ``RawConnection/flood(_:times:)``'s writes, one after another on the event loop.
private final class Flood: @unchecked Sendable {
    // Used on the channel's event loop only.
    let channel: any Channel
    let buffer: ByteBuffer
    let times: Int
    let done: EventLoopPromise<Int>

    init(channel: any Channel, buffer: ByteBuffer, times: Int) {
        self.channel = channel
        self.buffer = buffer
        self.times = times
        self.done = channel.eventLoop.makePromise(of: Int.self)
    }

    func next(_ sent: Int) {
        guard sent < self.times, self.channel.isActive else {
            self.done.succeed(sent)
            return
        }
        self.channel.writeAndFlush(self.buffer).whenComplete { result in
            switch result {
            case .success:
                // A new turn of the loop, not a deeper stack, when the write completed at once.
                self.channel.eventLoop.execute { self.next(sent + 1) }
            case .failure:
                self.done.succeed(sent)
            }
        }
    }
}

/// Completes when the TLS handshake does (or fails).
private final class HandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    let promise: EventLoopPromise<Void>

    init(promise: EventLoopPromise<Void>) { self.promise = promise }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event { self.promise.succeed(()) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.promise.fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.promise.fail(HavenError(code: .unavailable, message: "closed during the handshake"))
        context.fireChannelInactive()
    }
}

/// Queues what arrives, for `RawConnection.next`.
private final class Collector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private var queue: [Result<Haven_V1_ServerEnvelope?, any Error>] = []
    private var waiter: (promise: EventLoopPromise<Haven_V1_ServerEnvelope?>, timer: Scheduled<Void>)?
    private var ended = false
    /// The last go-away the server sent, kept after it was read.
    private(set) var lastGoAway: Haven_V1_GoAway?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let payload = Self.unwrapInboundIn(data)
        do {
            let envelope = try Haven_V1_ServerEnvelope(decodingPayload: payload)
            if case .goAway(let goAway) = envelope.kind { self.lastGoAway = goAway }
            self.push(.success(envelope))
        } catch {
            self.push(.failure(error))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.push(.failure(error))
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.push(.success(nil))
        self.ended = true
    }

    private func push(_ result: Result<Haven_V1_ServerEnvelope?, any Error>) {
        guard !self.ended else { return }
        if let waiter = self.waiter {
            self.waiter = nil
            waiter.timer.cancel()
            waiter.promise.completeWith(result)
        } else {
            self.queue.append(result)
        }
    }

    func next(timeout: TimeAmount, eventLoop: any EventLoop) -> EventLoopFuture<Haven_V1_ServerEnvelope?> {
        if !self.queue.isEmpty {
            let result = self.queue.removeFirst()
            if case .success(nil) = result { self.queue.insert(result, at: 0) }  // EOF stays EOF
            return eventLoop.makeCompletedFuture(result)
        }
        let promise = eventLoop.makePromise(of: Haven_V1_ServerEnvelope?.self)
        // Held (on its event loop) until the timer fires or is cancelled, at most `timeout`.
        let collector = NIOLoopBound(self, eventLoop: eventLoop)
        let timer = eventLoop.scheduleTask(in: timeout) {
            collector.value.waiter = nil
            promise.fail(
                HavenError(code: .deadlineExceeded, message: "no frame within \(timeout.nanoseconds / 1_000_000) ms")
            )
        }
        self.waiter = (promise, timer)
        return promise.futureResult
    }
}
