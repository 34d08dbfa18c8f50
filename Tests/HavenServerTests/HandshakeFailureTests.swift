import Foundation
import HavenProtocol
import HavenServer
import HavenTestSupport
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Testing

/// Failed handshakes cost a stranger nothing, so they must not cost the
/// server a log line each: counted always, logged once per reason every 10 s,
/// with a short reason and no library text.
@Suite("Failed handshakes")
struct HandshakeFailureTests {
    /// Connects over TCP, sends `bytes`, and waits for the server to close.
    static func garbage(_ bytes: String, port: Int) async throws {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(string: bytes)).get()
        try await channel.closeFuture.get()
    }

    @Test("twenty failed handshakes: twenty counted, one short line per reason")
    func throttled() async throws {
        let deployment = try TestDeployment()
        let capture = LogCapture()
        let server = try await deployment.start(logger: capture.logger(level: .info))
        let began = ContinuousClock.now
        do {
            let credentials = try deployment.credentials(for: "worker-kol")
            for _ in 0..<10 {
                try await Self.garbage("GET / HTTP/1.1\r\nHost: haven\r\n\r\n", port: server.port)
                _ = try? await RawConnection.connect(port: server.port, credentials: credentials, tlsVersion: .tlsv12)
            }
            // The server counts the last failure after the client has seen it: wait for the count, not a time.
            let admin = try await RawConnection.connect(
                port: server.port,
                credentials: try deployment.credentials(for: "admin")
            )
            try #require(try await admin.hello() != nil)
            var status = Haven_V1_ServerStatus()
            for id in 1...50 {
                status = try await admin.unary(MethodCatalog.OperationsService.getServerStatus, .init(), id: UInt64(id))
                if status.handshakeFailures >= 20 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(status.handshakeFailures == 20)
            let lines = capture.all.filter { $0.contains("TLS handshake failed") }
            // Each line's reason (the text after "reason=", up to the next key or the end).
            let reasons = lines.map { line in
                String(line[line.range(of: "reason=")!.upperBound...]).components(separatedBy: " remote=")[0]
            }
            // One line per reason per 10 s (a loaded machine can stretch the test past 10 s).
            let windows = Int((ContinuousClock.now - began) / .seconds(10)) + 1
            for reason in Set(reasons) {
                #expect(reasons.filter { $0 == reason }.count <= windows, "\(reason): \(lines)")
            }
            #expect(reasons.count < 20, "\(lines)")
            #expect(reasons.contains("not TLS (plain HTTP)"))
            #expect(reasons.contains("TLS version other than 1.3"))
            for line in lines {
                #expect(
                    !line.contains("/") || line.contains("1.3") || line.contains("HTTP"),
                    "no source paths: \(line)"
                )
                #expect(!line.contains("error:"), "no BoringSSL error stack: \(line)")
            }
        } catch {
            try? await server.stop()
            throw error
        }
        try await server.stop()
    }
}
