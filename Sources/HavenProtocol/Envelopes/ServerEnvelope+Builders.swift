import SwiftProtobuf

extension Haven_V1_ServerEnvelope {
    /// The answer to a client's hello.
    ///
    /// - Parameters:
    ///   - protocolVersion: The version chosen.
    ///   - serverAgent: Software and version, e.g. `havend/1.0`.
    ///   - limits: The limits enforced on the connection.
    /// - Returns: The envelope, on call id 0.
    public static func hello(
        protocolVersion: UInt32,
        serverAgent: String,
        limits: Haven_V1_ConnectionLimits
    ) -> Self {
        var envelope = Self()
        envelope.hello.protocolVersion = protocolVersion
        envelope.hello.serverAgent = serverAgent
        envelope.hello.limits = limits
        return envelope
    }

    /// One message of a server-streaming call.
    ///
    /// - Parameters:
    ///   - callID: The call.
    ///   - response: The message.
    /// - Returns: The envelope.
    /// - Throws: Nothing any more: the generated codec cannot fail (the
    ///   signature keeps `throws` so that callers need no change).
    public static func message(callID: UInt64, response: some HavenWireMessage) throws(HavenError) -> Self {
        var envelope = Self()
        envelope.callID = callID
        envelope.message.payload = response.serializedPayload()
        return envelope
    }

    /// The successful end of a unary call, carrying its response.
    ///
    /// - Parameters:
    ///   - callID: The call.
    ///   - response: The response message.
    /// - Returns: The envelope.
    /// - Throws: Nothing any more: the generated codec cannot fail (the
    ///   signature keeps `throws` so that callers need no change).
    public static func end(callID: UInt64, response: some HavenWireMessage) throws(HavenError) -> Self {
        var envelope = Self()
        envelope.callID = callID
        envelope.end.code = .ok
        envelope.end.payload = response.serializedPayload()
        return envelope
    }

    /// The successful end of a server-streaming call.
    ///
    /// - Parameter callID: The call.
    /// - Returns: The envelope.
    public static func endOfStream(callID: UInt64) -> Self {
        var envelope = Self()
        envelope.callID = callID
        envelope.end = Haven_V1_CallEnd()
        return envelope
    }

    /// The failed end of a call.
    ///
    /// - Parameters:
    ///   - callID: The call.
    ///   - error: Why it failed.
    /// - Returns: The envelope.
    public static func end(callID: UInt64, error: HavenError) -> Self {
        var envelope = Self()
        envelope.callID = callID
        envelope.end.code = error.code.statusCode.wire
        envelope.end.message = error.message
        envelope.end.details = error.details
        return envelope
    }

    /// The answer to a ping.
    ///
    /// - Parameter opaque: The ping's value.
    /// - Returns: The envelope, on call id 0.
    public static func pong(_ opaque: UInt64) -> Self {
        var envelope = Self()
        envelope.pong.opaque = opaque
        return envelope
    }

    /// Announces that the server closes the connection.
    ///
    /// - Parameters:
    ///   - lastCallID: The highest call id that will still be processed.
    ///   - reason: Why: UNAVAILABLE for shutdown, or the connection's error.
    /// - Returns: The envelope, on call id 0.
    public static func goAway(lastCallID: UInt64, reason: HavenError) -> Self {
        var envelope = Self()
        envelope.goAway.lastCallID = lastCallID
        envelope.goAway.code = reason.code.statusCode.wire
        envelope.goAway.message = reason.message
        return envelope
    }
}

extension Haven_V1_CallEnd {
    /// The call's outcome as a status code.
    public var statusCode: StatusCode { StatusCode(wire: self.code) }

    /// The failure this end reports, or `nil` when the call succeeded.
    public var error: HavenError? {
        guard let code = HavenError.Code(self.statusCode) else { return nil }
        return HavenError(code: code, message: self.message, details: self.details)
    }
}

extension Haven_V1_GoAway {
    /// Why the server is closing, as an error for the calls it will not finish.
    /// A go-away carrying OK (not sent by Haven servers) reads as UNAVAILABLE.
    public var reason: HavenError {
        HavenError(code: HavenError.Code(StatusCode(wire: self.code)) ?? .unavailable, message: self.message)
    }
}
