import SwiftProtobuf

extension Haven_V1_ClientEnvelope {
    /// The first frame of a connection.
    ///
    /// - Parameters:
    ///   - clientAgent: Software and version, e.g. `haven-swift/1.0`. Logged by
    ///     the server; never a person's name.
    ///   - versions: Protocol versions offered.
    /// - Returns: The envelope, on call id 0.
    public static func hello(
        clientAgent: String,
        versions: [UInt32] = HavenWire.supportedProtocolVersions
    ) -> Self {
        var envelope = Self()
        envelope.hello.protocolVersions = versions
        envelope.hello.clientAgent = clientAgent
        return envelope
    }

    /// Starts a call.
    ///
    /// - Parameters:
    ///   - callID: A new call id, greater than every one used before on the connection.
    ///   - method: The method, from ``MethodCatalog``.
    ///   - request: The request message.
    ///   - timeout: Time allowed; `nil` for the server's default. Rounded up to
    ///     whole milliseconds, and at least one, so a short timeout never turns
    ///     into "use the default".
    ///   - initialCredit: Streaming calls: messages the server may send before
    ///     the first ``credit(callID:messages:)``; 0 for the default of 16.
    /// - Returns: The envelope.
    /// - Throws: Nothing any more: the generated codec cannot fail (the
    ///   signature keeps `throws` so that callers need no change).
    public static func start<Request, Response>(
        callID: UInt64,
        method: MethodDescriptor<Request, Response>,
        request: Request,
        timeout: Duration? = nil,
        initialCredit: UInt32 = 0
    ) throws(HavenError) -> Self {
        var envelope = Self()
        envelope.callID = callID
        envelope.start.method = method.fullName
        envelope.start.payload = request.serializedPayload()
        if let timeout {
            envelope.start.timeoutMs = HavenWire.milliseconds(roundingUp: timeout)
        }
        envelope.start.initialCredit = initialCredit
        return envelope
    }

    /// Cancels a call in flight.
    ///
    /// - Parameter callID: The call.
    /// - Returns: The envelope.
    public static func cancel(callID: UInt64) -> Self {
        var envelope = Self()
        envelope.callID = callID
        envelope.cancel = Haven_V1_CallCancel()
        return envelope
    }

    /// Lets a server-streaming call send more messages.
    ///
    /// - Parameters:
    ///   - callID: The call.
    ///   - messages: How many more (at least 1).
    /// - Returns: The envelope.
    public static func credit(callID: UInt64, messages: UInt32) -> Self {
        var envelope = Self()
        envelope.callID = callID
        envelope.credit.messages = messages
        return envelope
    }

    /// A liveness probe; the server echoes `opaque` in a pong.
    ///
    /// - Parameter opaque: Any value.
    /// - Returns: The envelope, on call id 0.
    public static func ping(_ opaque: UInt64) -> Self {
        var envelope = Self()
        envelope.ping.opaque = opaque
        return envelope
    }
}

extension HavenWire {
    /// A duration in whole milliseconds, rounded up, at least 1.
    ///
    /// - Parameter duration: A positive duration (zero or negative gives 1).
    /// - Returns: The milliseconds to put in `CallStart.timeout_ms`.
    public static func milliseconds(roundingUp duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0, seconds > 0 || attoseconds > 0 else { return 1 }
        let attosecondsPerMillisecond: Int64 = 1_000_000_000_000_000
        let wholeMilliseconds = attoseconds / attosecondsPerMillisecond
        let remainder = attoseconds % attosecondsPerMillisecond
        let (total, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1000)
        guard !overflow else { return .max }
        return total &+ UInt64(wholeMilliseconds) &+ (remainder > 0 ? 1 : 0)
    }

    /// The protocol version two peers use: the highest both speak.
    ///
    /// - Parameters:
    ///   - offered: Versions the client offered in its hello.
    ///   - supported: Versions this side speaks.
    /// - Returns: The version, or `nil` when they share none.
    public static func negotiate(
        offered: [UInt32],
        supported: [UInt32] = HavenWire.supportedProtocolVersions
    ) -> UInt32? {
        Set(offered).intersection(supported).max()
    }
}
