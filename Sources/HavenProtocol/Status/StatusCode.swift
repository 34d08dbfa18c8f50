/// One of the seventeen canonical status codes, with gRPC's numbers and meanings.
///
/// Every call on a Haven connection ends with a status code: ``ok`` on success,
/// one of the other sixteen on failure (see ``HavenError``). The numbers are
/// the wire values of `haven.v1.StatusCode` in `Protos/haven/v1/rpc.proto`.
///
/// ```swift
/// let code = StatusCode(rawValue: 9)   // .failedPrecondition
/// print(code)                          // FAILED_PRECONDITION
/// ```
public struct StatusCode: Hashable, Sendable, CustomStringConvertible {
    private enum Wrapped: Int, CaseIterable {
        case ok = 0
        case cancelled = 1
        case unknown = 2
        case invalidArgument = 3
        case deadlineExceeded = 4
        case notFound = 5
        case alreadyExists = 6
        case permissionDenied = 7
        case resourceExhausted = 8
        case failedPrecondition = 9
        case aborted = 10
        case outOfRange = 11
        case unimplemented = 12
        case `internal` = 13
        case unavailable = 14
        case dataLoss = 15
        case unauthenticated = 16
    }

    private let wrapped: Wrapped

    private init(_ wrapped: Wrapped) {
        self.wrapped = wrapped
    }

    /// Creates a status code from its wire number.
    ///
    /// - Parameter rawValue: A number from 0 to 16.
    /// - Returns: `nil` for any other number; a peer that sends one is treated
    ///   as having sent ``unknown`` by ``init(wire:)``.
    public init?(rawValue: Int) {
        guard let wrapped = Wrapped(rawValue: rawValue) else { return nil }
        self.wrapped = wrapped
    }

    /// The wire number, 0 to 16.
    public var rawValue: Int { self.wrapped.rawValue }

    /// The name used in the specification, e.g. `FAILED_PRECONDITION`.
    public var description: String {
        switch self.wrapped {
        case .ok: "OK"
        case .cancelled: "CANCELLED"
        case .unknown: "UNKNOWN"
        case .invalidArgument: "INVALID_ARGUMENT"
        case .deadlineExceeded: "DEADLINE_EXCEEDED"
        case .notFound: "NOT_FOUND"
        case .alreadyExists: "ALREADY_EXISTS"
        case .permissionDenied: "PERMISSION_DENIED"
        case .resourceExhausted: "RESOURCE_EXHAUSTED"
        case .failedPrecondition: "FAILED_PRECONDITION"
        case .aborted: "ABORTED"
        case .outOfRange: "OUT_OF_RANGE"
        case .unimplemented: "UNIMPLEMENTED"
        case .internal: "INTERNAL"
        case .unavailable: "UNAVAILABLE"
        case .dataLoss: "DATA_LOSS"
        case .unauthenticated: "UNAUTHENTICATED"
        }
    }

    /// All seventeen codes, in wire order.
    public static let allCases: [StatusCode] = Wrapped.allCases.map(StatusCode.init)

    /// Success.
    public static let ok = StatusCode(.ok)
    /// The call was cancelled, typically by the caller.
    public static let cancelled = StatusCode(.cancelled)
    /// An error with no better code.
    public static let unknown = StatusCode(.unknown)
    /// The request is malformed, whatever the state of the system.
    public static let invalidArgument = StatusCode(.invalidArgument)
    /// The deadline passed before the call completed.
    public static let deadlineExceeded = StatusCode(.deadlineExceeded)
    /// The record does not exist, or the caller may not know that it does.
    public static let notFound = StatusCode(.notFound)
    /// The record being created already exists.
    public static let alreadyExists = StatusCode(.alreadyExists)
    /// The caller is authenticated but not allowed to do this.
    public static let permissionDenied = StatusCode(.permissionDenied)
    /// A limit was hit: frame size, calls in flight, connections.
    public static let resourceExhausted = StatusCode(.resourceExhausted)
    /// The system is not in the state the call needs, e.g. a stale version.
    public static let failedPrecondition = StatusCode(.failedPrecondition)
    /// A concurrency conflict; retrying the whole read-modify-write may succeed.
    public static let aborted = StatusCode(.aborted)
    /// A value is past the valid range, e.g. an expired feed cursor.
    public static let outOfRange = StatusCode(.outOfRange)
    /// The method is not known or not supported.
    public static let unimplemented = StatusCode(.unimplemented)
    /// A server invariant broke.
    public static let `internal` = StatusCode(.internal)
    /// The service is unavailable; retry with backoff.
    public static let unavailable = StatusCode(.unavailable)
    /// Unrecoverable data loss or corruption.
    public static let dataLoss = StatusCode(.dataLoss)
    /// The caller is not authenticated.
    public static let unauthenticated = StatusCode(.unauthenticated)
}

extension StatusCode {
    /// Creates a status code from its wire enum. Numbers outside 0–16 (a newer
    /// or broken peer) become ``unknown``.
    ///
    /// - Parameter wire: The `haven.v1.StatusCode` value received.
    public init(wire: Haven_V1_StatusCode) {
        self = StatusCode(rawValue: wire.rawValue) ?? .unknown
    }

    /// The wire enum value of this code.
    public var wire: Haven_V1_StatusCode {
        Haven_V1_StatusCode(rawValue: self.rawValue) ?? .unknown
    }
}
