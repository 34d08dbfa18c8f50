import Foundation
import HavenProtocol
import SwiftProtobuf

/// The responses of a server-streaming call, as they arrive.
///
/// The server sends only as many messages as this stream has asked for
/// (credit): a consumer that stops reading holds the server back instead of
/// filling memory. Breaking out of the loop, or cancelling the task, cancels
/// the call on the server.
public struct HavenResponseStream<Response: HavenWireMessage>: AsyncSequence, Sendable {
    public typealias Element = Response

    /// Messages the server may send ahead of the consumer.
    static var window: UInt32 { 32 }

    let messages: AsyncThrowingStream<Data, any Error>
    let grant: @Sendable (UInt32) -> Void

    init(messages: AsyncThrowingStream<Data, any Error>, grant: @escaping @Sendable (UInt32) -> Void) {
        self.messages = messages
        self.grant = grant
    }

    public func makeAsyncIterator() -> Iterator {
        Iterator(base: self.messages.makeAsyncIterator(), grant: self.grant)
    }

    /// Iterates the responses.
    public struct Iterator: AsyncIteratorProtocol {
        var base: AsyncThrowingStream<Data, any Error>.AsyncIterator
        let grant: @Sendable (UInt32) -> Void
        var consumed: UInt32 = 0

        /// The next response, nil when the call ended with OK.
        ///
        /// - Throws: `HavenError` when the call failed.
        public mutating func next() async throws -> Response? {
            let payload: Data?
            do {
                payload = try await self.base.next()
            } catch let failure as CallFailure {
                throw failure.error
            }
            guard let payload else { return nil }
            self.consumed += 1
            if self.consumed == HavenResponseStream.window / 2 {
                self.grant(self.consumed)
                self.consumed = 0
            }
            return try Response(decodingPayload: payload)
        }
    }
}
