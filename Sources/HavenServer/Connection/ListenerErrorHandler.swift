import HavenStore
import Logging
import NIOCore

/// Keeps one accepted connection's failure from ending a listener (the RPC
/// listener's and the operations listener's).
///
/// NIO's accept handler fires an error through the listening channel when an
/// accepted socket cannot be set up (its options fail on a descriptor a
/// reset invalidated, or it arrives as the listener closes). The listener's
/// async stream of connections would end at that error: the server would
/// stop accepting, and connections accepted after it would be dropped
/// unserved — which NIO answers with a crash. Such an error concerns one
/// connection, already closed by NIO; this handler, placed right after the
/// accept handler, logs it (once every 10 s per kind) and goes on.
final class ListenerErrorHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    /// The name NIO gives its accept handler in the listening channel's pipeline.
    static let acceptHandlerName = "AcceptHandler"

    private let logger: Logger
    private let log = RateLimitedLog(interval: .seconds(10))

    init(logger: Logger) {
        self.logger = logger
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.log.log(
            "\(type(of: error))",
            "an accepted connection failed before it was served",
            level: .warning,
            metadata: ["error": "\(error)"],
            to: self.logger
        )
    }

    /// Places a handler right after the accept handler of `channel`, a
    /// listening channel NIO's `ServerBootstrap` made.
    static func install(on channel: any Channel, logger: Logger) async throws {
        try await channel.eventLoop.submit {
            let pipeline = channel.pipeline.syncOperations
            let accept = try pipeline.context(name: Self.acceptHandlerName)
            try pipeline.addHandler(ListenerErrorHandler(logger: logger), position: .after(accept.handler))
        }.get()
    }
}
