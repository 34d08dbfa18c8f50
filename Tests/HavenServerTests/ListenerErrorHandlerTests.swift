import HavenTestSupport
import Logging
import NIOCore
import NIOPosix
import Testing

@testable import HavenServer

/// An error on the listening channel concerns one accepted connection: the
/// listener's stream of connections goes on after it.
@Suite("Listener errors")
struct ListenerErrorHandlerTests {
    @Test(
        "installed after NIO's accept handler, an error fired through the listening channel does not end its stream of connections"
    )
    func survivesAnError() async throws {
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        var logger = Logger(label: "haven-listener-test")
        logger.logLevel = .critical
        try await ListenerErrorHandler.install(on: listener.channel, logger: logger)
        let port = try #require(listener.channel.localAddress?.port)
        try await listener.executeThenClose { inbound in
            var accepted = inbound.makeAsyncIterator()
            let first = try PlainSocket(port: port)
            let one = try #require(try await accepted.next())
            try await one.executeThenClose { _, _ in }
            // What NIO's accept handler fires when an accepted socket cannot be set up.
            try await listener.channel.eventLoop.submit {
                let accept = try listener.channel.pipeline.syncOperations.context(
                    name: ListenerErrorHandler.acceptHandlerName
                )
                accept.fireErrorCaught(ChannelError.ioOnClosedChannel)
            }.get()
            let second = try PlainSocket(port: port)
            let two = try #require(try await accepted.next(), "the stream went on after the error")
            try await two.executeThenClose { _, _ in }
            first.close()
            second.close()
        }
    }
}
