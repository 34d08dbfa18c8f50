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
    /// The call's control block, on a connection.
    let control: CallControl?

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
        self.init(
            principal: principal,
            method: method,
            callID: callID,
            deadline: deadline,
            logger: logger,
            control: nil
        )
    }

    /// A context on a connection, whose calls the connection controls.
    init(
        principal: Principal,
        method: String,
        callID: UInt64,
        deadline: ContinuousClock.Instant,
        logger: Logger,
        control: CallControl?
    ) {
        self.principal = principal
        self.method = method
        self.callID = callID
        self.deadline = deadline
        self.logger = logger
        self.control = control
    }

    /// Declares that the call runs until it is cancelled (a followed feed):
    /// a graceful shutdown then ends it at its start, with UNAVAILABLE,
    /// instead of holding the shutdown for the whole grace period.
    package func runsUntilCancelled() {
        self.control?.markOpenEnded()
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
