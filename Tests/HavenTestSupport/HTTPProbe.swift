import Foundation
import HavenProtocol
import NIOCore
import NIOHTTP1
import NIOPosix

/// One HTTP/1.1 request to the operations listener, through NIO's HTTP
/// client pipeline, as Prometheus or a load balancer's health check makes it.
public enum HTTPProbe {
    /// The answer: status code, body, and headers by lowercase name.
    public struct Answer: Sendable {
        public var status: Int
        public var body: String
        public var headers: [String: String]
    }

    /// Sends `method path` to `url` (`http://host:port`) and reads the whole answer.
    public static func request(_ url: String, _ path: String, method: HTTPMethod = .GET) async throws -> Answer {
        guard let authority = url.split(separator: "//").last,
            let colon = authority.lastIndex(of: ":"),
            let port = Int(authority[authority.index(after: colon)...])
        else { throw HavenError(code: .invalidArgument, message: "not http://host:port: \(url)") }
        let host = String(authority[..<colon])
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                        wrappingChannelSynchronously: channel
                    )
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var headers = HTTPHeaders()
            headers.add(name: "Host", value: host)
            headers.add(name: "Connection", value: "close")
            try await outbound.write(
                .head(HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers))
            )
            try await outbound.write(.end(nil))
            var answer = Answer(status: 0, body: "", headers: [:])
            var body = ByteBuffer()
            for try await part in inbound {
                switch part {
                case .head(let head):
                    answer.status = Int(head.status.code)
                    for (name, value) in head.headers { answer.headers[name.lowercased()] = value }
                case .body(var chunk):
                    body.writeBuffer(&chunk)
                case .end:
                    answer.body = String(buffer: body)
                    return answer
                }
            }
            answer.body = String(buffer: body)
            return answer
        }
    }

    /// The value of a Prometheus sample line such as
    /// `haven_calls_total{method="…",code="OK"}`, nil when absent.
    public static func sample(_ exposition: String, _ series: String) -> Double? {
        for line in exposition.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " ") else { continue }
            if line[..<space] == series { return Double(line[line.index(after: space)...]) }
        }
        return nil
    }
}
