import Foundation
import HavenProtocol
import Logging

/// What a handler knows about the call it serves.
package struct CallContext: Sendable {
    /// Who is calling.
    package var principal: Principal
    /// The method's full name.
    package var method: String
    /// The call id on its connection.
    package var callID: UInt64
    /// When the call must be done.
    package var deadline: ContinuousClock.Instant
    /// A logger with the connection's and call's metadata (never identities).
    package var logger: Logger

    /// Which request this is, as the audit trail names it: `<connection>/<call id>`.
    package var requestID: String {
        "\(self.logger[metadataKey: "connection"].map { "\($0)" } ?? "-")/\(self.callID)"
    }

    package init(
        principal: Principal,
        method: String,
        callID: UInt64,
        deadline: ContinuousClock.Instant,
        logger: Logger
    ) {
        self.principal = principal
        self.method = method
        self.callID = callID
        self.deadline = deadline
        self.logger = logger
    }
}

/// Sends the messages of a server-streaming call, one credit each.
package struct ResponseStream<Response: Sendable>: Sendable {
    let sendMessage: @Sendable (Response) async throws -> Void

    package init(_ send: @escaping @Sendable (Response) async throws -> Void) {
        self.sendMessage = send
    }

    /// Sends one message, waiting for the client's credit if it has none left.
    ///
    /// - Throws: `CancellationError` when the call ends first; ``HavenError``
    ///   when the message cannot be sent.
    package func send(_ message: Response) async throws {
        try await self.sendMessage(message)
    }
}
