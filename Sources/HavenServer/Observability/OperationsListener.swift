import Foundation
import HavenProtocol
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle
import Synchronization

/// The operations listener: plain HTTP/1.1 (NIO's HTTP/1 pipeline), separate
/// from the RPC port and bound to loopback by default, for the machines that
/// watch havend — Prometheus, a supervisor, a load balancer's health check.
///
/// - `GET /metrics`: every metric in Prometheus' text format.
/// - `GET /health/live`: 200 while the process answers.
/// - `GET /health/ready`: 200 when the store is open and writable, the keys
///   are loaded and the RPC listener accepts connections; 503 otherwise, with
///   the failing check in a JSON body.
///
/// It serves no record, no identity and nothing a client sent: counts and
/// states only. Anything but GET on those paths is refused.
package final class OperationsListener: Service, Sendable {
    /// What the listener reads when asked.
    package struct Sources: Sendable {
        package var registry: PrometheusCollectorRegistry
        package var metrics: ServerMetrics
        /// Runs the readiness checks.
        package var readiness: @Sendable () async -> Readiness
        /// Reads the facts shown as gauges (database size, audit chain, certificate expiries).
        package var facts: @Sendable (_ ready: Bool) async -> ServerMetrics.Facts

        package init(
            registry: PrometheusCollectorRegistry,
            metrics: ServerMetrics,
            readiness: @escaping @Sendable () async -> Readiness,
            facts: @escaping @Sendable (_ ready: Bool) async -> ServerMetrics.Facts
        ) {
            self.registry = registry
            self.metrics = metrics
            self.readiness = readiness
            self.facts = facts
        }
    }

    private let host: String
    private let port: Int
    private let sources: Sources
    private let logger: Logger
    private let group: any EventLoopGroup
    private let listening: EventLoopPromise<SocketAddress>
    private let channel = Mutex<(any Channel)?>(nil)
    /// Open HTTP connections: more than ``maximumConnections`` are closed at once.
    private let open = Atomic<Int>(0)
    static let maximumConnections = 32
    /// A connection that sends nothing this long is closed.
    static let idleTimeout = TimeAmount.seconds(30)

    package init(
        host: String,
        port: Int,
        sources: Sources,
        logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.host = host
        self.port = port
        self.sources = sources
        self.logger = logger
        self.group = group
        self.listening = group.next().makePromise(of: SocketAddress.self)
    }

    /// The address it listens on, once it does.
    package var listeningAddress: SocketAddress {
        get async throws { try await self.listening.futureResult.get() }
    }

    /// `http://127.0.0.1:7444`, once it listens.
    package var url: String {
        get async throws {
            let address = try await self.listeningAddress
            let host = address.ipAddress ?? self.host
            return "http://\(host.contains(":") ? "[\(host)]" : host):\(address.port ?? self.port)"
        }
    }

    private typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    /// Listens until a graceful shutdown or cancellation.
    package func run() async throws {
        defer { self.listening.fail(HavenError(code: .unavailable, message: "stopped before listening")) }
        let server: NIOAsyncChannel<Connection, Never>
        do {
            server = try await ServerBootstrap(group: self.group)
                .serverChannelOption(.backlog, value: 64)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: self.host, port: self.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let pipeline = channel.pipeline.syncOperations
                        try pipeline.addHandler(IdleStateHandler(readTimeout: Self.idleTimeout))
                        try pipeline.addHandler(CloseOnIdle())
                        try pipeline.configureHTTPServerPipeline(withErrorHandling: true)
                        return try Connection(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            let failure = HavenError(
                code: .unavailable,
                message: "cannot listen for operations on \(self.host):\(self.port): \(error)"
            )
            self.listening.fail(failure)
            throw failure
        }
        self.channel.withLock { $0 = server.channel }
        if let address = server.channel.localAddress {
            self.listening.succeed(address)
            self.logger.info("operations listener", metadata: ["address": "\(address)"])
        }
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                try? await server.executeThenClose { inbound in
                    // One accepted socket's failure must not end this listener either.
                    try await ListenerErrorHandler.install(on: server.channel, logger: self.logger)
                    try await withThrowingDiscardingTaskGroup { group in
                        for try await connection in inbound {
                            group.addTask { await self.serve(connection) }
                        }
                    }
                }
            } onGracefulShutdown: {
                self.stop()
            }
        } onCancel: {
            self.stop()
        }
    }

    /// Stops listening; connections being served finish their request.
    package func stop() {
        self.channel.withLock { $0 }?.close(promise: nil)
    }

    private func serve(_ connection: Connection) async {
        defer { self.open.subtract(1, ordering: .relaxed) }
        guard self.open.add(1, ordering: .relaxed).newValue <= Self.maximumConnections else {
            try? await connection.executeThenClose { _, _ in }
            return
        }
        try? await connection.executeThenClose { inbound, outbound in
            var head: HTTPRequestHead?
            for try await part in inbound {
                switch part {
                case .head(let request):
                    head = request
                case .body:
                    break  // no route takes a body; it is read and dropped
                case .end:
                    guard let request = head else { continue }
                    head = nil
                    let response = await self.respond(to: request)
                    var headers = HTTPHeaders()
                    headers.add(name: "Content-Type", value: response.contentType)
                    headers.add(name: "Content-Length", value: "\(response.body.utf8.count)")
                    headers.add(name: "Cache-Control", value: "no-store")
                    if let allow = response.allow { headers.add(name: "Allow", value: allow) }
                    let keepAlive = request.isKeepAlive
                    headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
                    try await outbound.write(
                        .head(HTTPResponseHead(version: request.version, status: response.status, headers: headers))
                    )
                    if request.method != .HEAD {
                        try await outbound.write(.body(.byteBuffer(ByteBuffer(string: response.body))))
                    }
                    try await outbound.write(.end(nil))
                    if !keepAlive { return }
                }
            }
        }
    }

    /// An answer of the listener.
    struct Response: Sendable {
        var status: HTTPResponseStatus
        var body: String
        var contentType = "text/plain; charset=utf-8"
        var allow: String?
    }

    /// Routes a request (exposed to the tests of its answers).
    func respond(to request: HTTPRequestHead) async -> Response {
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        guard ["/metrics", "/health/live", "/health/ready"].contains(path) else {
            return Response(status: .notFound, body: "not found: /metrics, /health/live and /health/ready are served\n")
        }
        guard request.method == .GET || request.method == .HEAD else {
            return Response(status: .methodNotAllowed, body: "only GET\n", allow: "GET, HEAD")
        }
        switch path {
        case "/health/live":
            return Response(status: .ok, body: "live\n")
        case "/health/ready":
            let readiness = await self.sources.readiness()
            return Response(
                status: readiness.isReady ? .ok : .serviceUnavailable,
                body: readiness.json + "\n",
                contentType: "application/json"
            )
        default:
            let readiness = await self.sources.readiness()
            self.sources.metrics.record(await self.sources.facts(readiness.isReady))
            return Response(
                status: .ok,
                body: self.sources.registry.emitToString(),
                contentType: "text/plain; version=0.0.4; charset=utf-8"
            )
        }
    }
}

/// Closes a connection that has been idle for the ``IdleStateHandler``'s time.
private final class CloseOnIdle: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
