import Foundation
import HavenProtocol
import SwiftProtobuf

/// Maps method names to handlers, typed by the catalog's descriptors.
///
/// Every request is decoded and checked against ``HavenFieldLimits`` here,
/// before its handler runs: no method can forget a field's bound.
package struct Router: Sendable {
    package typealias UnaryHandler = @Sendable (Data, CallContext) async throws -> Data
    package typealias StreamingHandler =
        @Sendable (Data, CallContext, ResponseStream<Data>) async throws -> Void

    package enum Entry: Sendable {
        case unary(UnaryHandler)
        case serverStreaming(StreamingHandler)
    }

    private var entries: [String: Entry] = [:]

    /// Called with every call refused with PERMISSION_DENIED, NOT_FOUND or
    /// UNAUTHENTICATED, so that the audit trail records it.
    package typealias Refusals = @Sendable (CallContext, HavenError) async -> Void
    private let refusals: Refusals?

    /// The codes that count as refusals: a record hidden from the caller
    /// answers NOT_FOUND exactly like one that does not exist, so both are
    /// audited alike.
    static let refusalCodes: Set<HavenError.Code> = [.permissionDenied, .notFound, .unauthenticated]

    /// - Parameter refusals: Told of every refused call (the audit trail).
    package init(refusals: Refusals? = nil) {
        self.refusals = refusals
    }

    /// Runs a handler, reporting refusals.
    private static func auditing<T>(
        _ refusals: Refusals?,
        _ context: CallContext,
        _ body: () async throws -> T
    ) async throws -> T {
        do {
            return try await body()
        } catch let error as HavenError where Self.refusalCodes.contains(error.code) {
            await refusals?(context, error)
            throw error
        }
    }

    /// Registers a unary method.
    package mutating func register<Request, Response>(
        _ method: MethodDescriptor<Request, Response>,
        _ handler: @escaping @Sendable (Request, CallContext) async throws -> Response
    ) {
        precondition(method.kind == .unary, "\(method.fullName) is not unary")
        precondition(self.entries[method.fullName] == nil, "\(method.fullName) registered twice")
        let refusals = self.refusals
        self.entries[method.fullName] = .unary { payload, context in
            try await Self.auditing(refusals, context) { () async throws -> Data in
                let request = try Request(decodingPayload: payload)
                try HavenFieldLimits.check(request)
                let response = try await handler(request, context)
                return response.serializedPayload()
            }
        }
    }

    /// Registers a server-streaming method.
    package mutating func register<Request, Response: Sendable>(
        _ method: MethodDescriptor<Request, Response>,
        streaming handler: @escaping @Sendable (Request, CallContext, ResponseStream<Response>) async throws -> Void
    ) {
        precondition(method.kind == .serverStreaming, "\(method.fullName) is not server-streaming")
        precondition(self.entries[method.fullName] == nil, "\(method.fullName) registered twice")
        let refusals = self.refusals
        self.entries[method.fullName] = .serverStreaming { payload, context, stream in
            try await Self.auditing(refusals, context) {
                let request = try Request(decodingPayload: payload)
                try HavenFieldLimits.check(request)
                try await handler(
                    request,
                    context,
                    ResponseStream { try await stream.send($0.serializedPayload()) }
                )
            }
        }
    }

    /// The handler of a method, if registered.
    package func entry(for fullName: String) -> Entry? {
        self.entries[fullName]
    }

    /// Names of every registered method.
    package var registeredMethods: Set<String> { Set(self.entries.keys) }
}
