import Foundation
import HavenProtocol
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

/// A listener NIO closes after an error on its socket ends the server's run
/// with an error, instead of leaving it waiting without a listener.
@Suite("Listener closed under the server")
struct ListenerClosedTests {
    @Test(
        "the listening socket shut down under a running server: run() fails with UNAVAILABLE, and stop() still returns",
        .timeLimit(.minutes(1))
    )
    func listenerShutDown() async throws {
        let deployment = try TestDeployment()
        let server = try await deployment.start()
        let descriptor = try #require(try Self.listeningDescriptor(port: server.port), "the server's listening socket")
        // accept() now fails with EINVAL: NIO closes the listening channel.
        #expect(Glibc.shutdown(descriptor, Int32(SHUT_RDWR)) == 0)
        let ended = await server.runEnded()
        #expect((ended as? HavenError)?.code == .unavailable, "\(String(describing: ended))")
        #expect((ended as? HavenError)?.message == "the listener closed without a shutdown")
        try? await server.stop()
    }

    /// This process's descriptor of the socket listening on `port`: among
    /// its open descriptors (from /proc), the one that accepts connections
    /// and is bound to that port.
    static func listeningDescriptor(port: Int) throws -> Int32? {
        for entry in try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            guard let descriptor = Int32(entry) else { continue }
            var accepting: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(descriptor, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) == 0, accepting == 1 else {
                continue
            }
            var address = sockaddr_in()
            var addressLength = socklen_t(MemoryLayout<sockaddr_in>.size)
            let named = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &addressLength) }
            }
            if named == 0, address.sin_family == sa_family_t(AF_INET), Int(UInt16(bigEndian: address.sin_port)) == port
            {
                return descriptor
            }
        }
        return nil
    }
}
