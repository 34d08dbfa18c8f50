import SwiftProtobuf

/// Whether a method answers once or streams.
public enum MethodKind: String, Hashable, Sendable {
    /// One request, one response (in the call's `CallEnd`).
    case unary
    /// One request, zero or more `CallMessage`s, then a `CallEnd`.
    case serverStreaming
}

/// Whether repeating a call can apply it twice, from the schema's
/// `option idempotency_level`.
///
/// A client may retry ``noSideEffects`` and ``idempotent`` methods after a
/// connection is lost (an idempotent create with the same idempotency key);
/// ``unknown`` ones are compare-and-set writes: re-read and decide.
public enum MethodIdempotency: String, Hashable, Sendable {
    /// `NO_SIDE_EFFECTS`: a read.
    case noSideEffects
    /// `IDEMPOTENT`: a write that carries an idempotency key; a retry with the same key returns the first result.
    case idempotent
    /// `IDEMPOTENCY_UNKNOWN` (the default): a write a retry may apply again, unless it fails on `expected_version`.
    case unknown

    /// Whether a call may be sent again after its outcome was lost.
    public var isSafeToRetry: Bool { self != .unknown }
}

/// A method of the protocol with its request and response types.
///
/// Descriptors are generated from the `service` blocks of `Protos/` into
/// ``MethodCatalog``; the server routes by them and the client calls by them,
/// so a method's name is written in exactly one place, the schema.
///
/// ```swift
/// let open = MethodCatalog.CaseService.openCase
/// print(open.fullName)   // haven.v1.CaseService/OpenCase
/// ```
public struct MethodDescriptor<Request: HavenWireMessage, Response: HavenWireMessage>: Hashable, Sendable {
    /// The fully qualified service, e.g. `haven.v1.CaseService`.
    public let service: String
    /// The method within the service, e.g. `OpenCase`.
    public let method: String
    /// Unary or server-streaming.
    public let kind: MethodKind
    /// Whether a retry can apply the call twice.
    public let idempotency: MethodIdempotency

    /// Creates a descriptor. Only the generated catalog should need this.
    ///
    /// - Parameters:
    ///   - service: The fully qualified service name.
    ///   - method: The method name.
    ///   - kind: Unary or server-streaming.
    ///   - idempotency: From the method's `idempotency_level` option.
    public init(service: String, method: String, kind: MethodKind, idempotency: MethodIdempotency = .unknown) {
        self.service = service
        self.method = method
        self.kind = kind
        self.idempotency = idempotency
    }

    /// The name sent in `CallStart.method`: `service/method`.
    public var fullName: String { "\(self.service)/\(self.method)" }

    /// The descriptor without its Swift types, for tables and listings.
    public var info: MethodInfo {
        MethodInfo(
            service: self.service,
            method: self.method,
            kind: self.kind,
            idempotency: self.idempotency,
            requestType: Request.protoMessageName,
            responseType: Response.protoMessageName
        )
    }
}

/// A method's names and kind, without Swift types.
public struct MethodInfo: Hashable, Sendable, CustomStringConvertible {
    /// The fully qualified service, e.g. `haven.v1.CaseService`.
    public let service: String
    /// The method within the service, e.g. `OpenCase`.
    public let method: String
    /// Unary or server-streaming.
    public let kind: MethodKind
    /// Whether a retry can apply the call twice.
    public let idempotency: MethodIdempotency
    /// The request's protobuf message name, e.g. `haven.v1.OpenCaseRequest`.
    public let requestType: String
    /// The response's protobuf message name, e.g. `haven.v1.Case`.
    public let responseType: String

    /// The name sent in `CallStart.method`: `service/method`.
    public var fullName: String { "\(self.service)/\(self.method)" }

    /// `service/method(request) returns ([stream ]response)`.
    public var description: String {
        let stream = self.kind == .serverStreaming ? "stream " : ""
        return "\(self.fullName)(\(self.requestType)) returns (\(stream)\(self.responseType))"
    }
}

/// Every method of the protocol, generated from `Protos/`.
///
/// One nested enum per service holds a ``MethodDescriptor`` per method, e.g.
/// `MethodCatalog.SurvivorService.recordService`; ``all`` lists them all.
public enum MethodCatalog {
    private static let byName: [String: MethodInfo] = Dictionary(
        MethodCatalog.all.map { ($0.fullName, $0) },
        uniquingKeysWith: { first, _ in first }
    )

    /// Looks a method up by the name a call carries.
    ///
    /// - Parameter fullName: `service/method`, e.g. `haven.v1.OfficeService/GetOffice`.
    /// - Returns: The method, or `nil` when there is none by that name
    ///   (the server answers UNIMPLEMENTED).
    public static func method(named fullName: String) -> MethodInfo? {
        self.byName[fullName]
    }
}

/// The message types of the schema, generated from `Protos/`.
///
/// For tools that handle messages by name, such as a frame dumper.
public enum HavenSchema {
    private static let byName: [String: any SwiftProtobuf.Message.Type] = Dictionary(
        HavenSchema.messageTypes.map { ($0.protoMessageName, $0) },
        uniquingKeysWith: { first, _ in first }
    )

    /// Looks a message type up by its protobuf name.
    ///
    /// - Parameter name: The full name, e.g. `haven.v1.Case`.
    /// - Returns: The Swift type, or `nil` when the schema has no such message.
    public static func messageType(named name: String) -> (any SwiftProtobuf.Message.Type)? {
        self.byName[name]
    }
}
