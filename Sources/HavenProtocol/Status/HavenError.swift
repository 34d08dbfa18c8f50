/// The error every layer of Haven reports: a canonical status code and a
/// message for people.
///
/// `HavenError` is what a failed call throws on the client and what a handler
/// throws on the server; on the wire it is a `haven.v1.CallEnd` (or, for the
/// whole connection, a `haven.v1.GoAway`). Its ``message`` never contains a
/// survivor's identity or a record's content: it names fields, codes and
/// limits, never values. Machine-readable detail, such as the current version
/// after a stale update, is in ``details``.
///
/// ```swift
/// do {
///     let updated = try await client.cases.updateStatus(request)
/// } catch let error as HavenError where error.code == .failedPrecondition {
///     if let current = error.currentVersion { … re-read, then decide … }
/// }
/// ```
public struct HavenError: Error, Hashable, Sendable {
    /// A failure code: any ``StatusCode`` except ``StatusCode/ok``.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The status code on the wire.
        public let statusCode: StatusCode

        /// Creates an error code from a status code.
        ///
        /// - Parameter statusCode: Any code but ``StatusCode/ok``.
        /// - Returns: `nil` for ``StatusCode/ok``, which is not a failure.
        public init?(_ statusCode: StatusCode) {
            guard statusCode != .ok else { return nil }
            self.statusCode = statusCode
        }

        private init(unchecked statusCode: StatusCode) {
            self.statusCode = statusCode
        }

        /// The name used in the specification, e.g. `NOT_FOUND`.
        public var description: String { self.statusCode.description }

        /// The call was cancelled, typically by the caller.
        public static let cancelled = Code(unchecked: .cancelled)
        /// An error with no better code.
        public static let unknown = Code(unchecked: .unknown)
        /// The request is malformed, whatever the state of the system.
        public static let invalidArgument = Code(unchecked: .invalidArgument)
        /// The deadline passed before the call completed.
        public static let deadlineExceeded = Code(unchecked: .deadlineExceeded)
        /// The record does not exist, or the caller may not know that it does.
        public static let notFound = Code(unchecked: .notFound)
        /// The record being created already exists.
        public static let alreadyExists = Code(unchecked: .alreadyExists)
        /// The caller is authenticated but not allowed to do this.
        public static let permissionDenied = Code(unchecked: .permissionDenied)
        /// A limit was hit: frame size, calls in flight, connections.
        public static let resourceExhausted = Code(unchecked: .resourceExhausted)
        /// The system is not in the state the call needs, e.g. a stale version.
        public static let failedPrecondition = Code(unchecked: .failedPrecondition)
        /// A concurrency conflict; retrying the whole read-modify-write may succeed.
        public static let aborted = Code(unchecked: .aborted)
        /// A value is past the valid range.
        public static let outOfRange = Code(unchecked: .outOfRange)
        /// The method is not known or not supported.
        public static let unimplemented = Code(unchecked: .unimplemented)
        /// A server invariant broke.
        public static let `internal` = Code(unchecked: .internal)
        /// The service is unavailable; retry with backoff.
        public static let unavailable = Code(unchecked: .unavailable)
        /// Unrecoverable data loss or corruption.
        public static let dataLoss = Code(unchecked: .dataLoss)
        /// The caller is not authenticated.
        public static let unauthenticated = Code(unchecked: .unauthenticated)
    }

    /// Where a failure comes from.
    public struct Source: Hashable, Sendable, CustomStringConvertible {
        private enum Wrapped: Hashable, Sendable {
            case server
            case transport
            case client
        }

        private let wrapped: Wrapped

        /// The server answered the call with this status: a refusal (or a
        /// failure) it decided.
        public static let server = Source(wrapped: .server)
        /// The connection failed: it could not be opened, broke, or closed
        /// before the call ended. The server may not have seen the call.
        public static let transport = Source(wrapped: .transport)
        /// This process ended the call: its deadline passed or its task was
        /// cancelled before the server answered.
        public static let client = Source(wrapped: .client)

        public var description: String {
            switch self.wrapped {
            case .server: "server"
            case .transport: "connection"
            case .client: "client"
            }
        }
    }

    /// What kind of failure this is.
    public var code: Code
    /// What went wrong, for people. Never contains record content.
    public var message: String
    /// Machine-readable detail (version conflicts, invalid fields, retry hints).
    public var details: [Haven_V1_ErrorDetail]
    /// Whether the server refused the call, the connection failed, or this
    /// process ended it.
    public var source: Source

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - code: The failure code.
    ///   - message: What went wrong. Name fields and limits; never include a
    ///     survivor's identity or any other record content.
    ///   - details: Machine-readable detail.
    ///   - source: Who ended the call (the server, unless said otherwise).
    public init(code: Code, message: String, details: [Haven_V1_ErrorDetail] = [], source: Source = .server) {
        self.code = code
        self.message = message
        self.details = details
        self.source = source
    }
}

extension HavenError: CustomStringConvertible {
    /// `CODE: message`, e.g. `NOT_FOUND: no case with that id`; failures that
    /// did not come from the server say so: `UNAVAILABLE (connection): …`.
    public var description: String {
        self.source == .server ? "\(self.code): \(self.message)" : "\(self.code) (\(self.source)): \(self.message)"
    }
}

extension HavenError {
    /// A stale compare-and-set update: FAILED_PRECONDITION naming the current
    /// version, in the message and as a `VersionConflict` detail.
    ///
    /// - Parameters:
    ///   - expected: The version the caller sent.
    ///   - current: The record's version now.
    /// - Returns: The error to end the call with.
    public static func staleVersion(expected: UInt64, current: UInt64) -> HavenError {
        var detail = Haven_V1_ErrorDetail()
        detail.versionConflict.currentVersion = current
        return HavenError(
            code: .failedPrecondition,
            message: "stale version: expected \(expected), current version is \(current)",
            details: [detail]
        )
    }

    /// An invalid request field: INVALID_ARGUMENT with a `FieldViolation` detail.
    ///
    /// - Parameters:
    ///   - field: The field's path, e.g. `office.time_zone`.
    ///   - problem: What is wrong, without echoing the value.
    /// - Returns: The error to end the call with.
    public static func invalidField(_ field: String, _ problem: String) -> HavenError {
        var detail = Haven_V1_ErrorDetail()
        detail.fieldViolation.field = field
        detail.fieldViolation.description_p = problem
        return HavenError(code: .invalidArgument, message: "\(field): \(problem)", details: [detail])
    }

    /// RESOURCE_EXHAUSTED with a `RetryInfo` detail: the server is at a limit
    /// that frees by itself, and says how long to wait before trying again.
    ///
    /// - Parameters:
    ///   - message: Which limit, without any record's content.
    ///   - retryAfterMs: The least time to wait before retrying, in milliseconds.
    /// - Returns: The error to end the call (or the connection) with.
    public static func exhausted(_ message: String, retryAfterMs: UInt64) -> HavenError {
        var detail = Haven_V1_ErrorDetail()
        detail.retry.retryAfterMs = retryAfterMs
        return HavenError(code: .resourceExhausted, message: message, details: [detail])
    }

    /// How long the server asked to wait before retrying (a `RetryInfo` detail), if it did.
    public var retryAfterMs: UInt64? {
        for detail in self.details {
            if case .retry(let retry) = detail.detail { return retry.retryAfterMs }
        }
        return nil
    }

    /// The current version named by a `VersionConflict` detail, if any.
    public var currentVersion: UInt64? {
        for detail in self.details {
            if case .versionConflict(let conflict) = detail.detail {
                return conflict.currentVersion
            }
        }
        return nil
    }

    /// The fields named by `FieldViolation` details.
    public var fieldViolations: [Haven_V1_FieldViolation] {
        self.details.compactMap { detail in
            if case .fieldViolation(let violation) = detail.detail { violation } else { nil }
        }
    }
}
