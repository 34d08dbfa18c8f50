import CoreMetrics
import Foundation
import HavenProtocol
import Logging
import Tracing

/// How a ``HavenClient`` connects and behaves.
///
/// ```swift
/// // The server named by the bundle (written at enrolment), or $HAVEN_SERVER:
/// var configuration = try HavenClientConfiguration(credentials: try HavenCredentials(bundle: bundleURL))
/// configuration.defaultTimeout = .seconds(10)
/// ```
public struct HavenClientConfiguration: Sendable {
    /// The server's host name or address.
    public var host: String
    /// The server's port (7443 by default).
    public var port: Int
    /// The name the server's certificate must be valid for; `host` when nil.
    /// Always verified: there is no way to turn verification off.
    public var serverHostname: String?
    /// Your credentials bundle.
    public var credentials: HavenCredentials
    /// The deadline of a call that sets none.
    public var defaultTimeout: Duration = .seconds(30)
    /// Time allowed to connect, complete TLS and the hello exchange.
    public var connectTimeout: Duration = .seconds(10)
    /// Connections kept to the server; calls are spread over them.
    public var poolSize: Int = 1
    /// Attempts for a call that may be retried safely (reads, and creates,
    /// which carry an idempotency key), including the first.
    public var maximumAttempts: Int = 4
    /// Delay before reconnecting after the first failure; doubles each time.
    public var initialBackoff: Duration = .milliseconds(100)
    /// The longest delay between reconnection attempts.
    public var maximumBackoff: Duration = .seconds(10)
    /// Who you are, for the server's logs: software and version, never a person.
    public var clientAgent: String = "haven-swift/\(HavenClient.version)"
    /// Renew the client certificate by itself once it is in the last third
    /// of its life (the credentials must come from a bundle directory, where
    /// the new certificate and key are written).
    public var renewsCredentials = true
    /// Where the client logs connection failures, reconnects and renewals
    /// (never record content). Silent unless you pass one.
    public var logger = Logger(label: "haven-client", factory: { _ in SwiftLogNoOpLogHandler() })
    /// Where the client's metrics go: calls by method and code, call latency,
    /// streams opened, retries, reconnects and failed connection attempts
    /// (`haven_client_*`, listed in docs/OPERATIONS.md). `nil`: the process's
    /// `MetricsSystem` (nowhere, unless you bootstrapped a backend).
    public var metricsFactory: (any MetricsFactory)?
    /// Where the client's spans go: one per call (kind `client`, named after
    /// the method), whose context the call start carries so that the
    /// server's spans continue your trace. `nil`: the process's
    /// `InstrumentationSystem.tracer` (none, unless you bootstrapped one,
    /// such as swift-otel's).
    public var tracer: (any Tracer)?

    /// A configuration with every option at its default.
    ///
    /// - Parameters:
    ///   - host: The server's host name or address.
    ///   - port: The server's port.
    ///   - credentials: Your credentials bundle.
    public init(host: String, port: Int = 7443, credentials: HavenCredentials) {
        self.host = host
        self.port = port
        self.credentials = credentials
    }

    /// A configuration for the server `server` names: `host:port`, or `[v6]:port`.
    ///
    /// - Throws: `HavenError` INVALID_ARGUMENT for an address that is not host:port.
    public init(server: String, credentials: HavenCredentials) throws {
        let (host, port) = try HavenServerAddress.parse(server)
        self.init(host: host, port: port, credentials: credentials)
    }

    /// A configuration for the server the credentials bundle names (its
    /// `server` file, written at enrolment), or else `$HAVEN_SERVER`.
    ///
    /// - Throws: `HavenError` INVALID_ARGUMENT when neither names one.
    public init(credentials: HavenCredentials) throws {
        guard
            let server = ProcessInfo.processInfo.environment["HAVEN_SERVER"].flatMap({ $0.isEmpty ? nil : $0 })
                ?? credentials.server
        else {
            throw HavenError(
                code: .invalidArgument,
                message:
                    "no server address: the credentials bundle has no 'server' file and HAVEN_SERVER is not set",
                source: .client
            )
        }
        try self.init(server: server, credentials: credentials)
    }
}

/// Options of one call.
public struct CallOptions: Sendable {
    /// The call's deadline, from when it starts; the configuration's default when nil.
    public var timeout: Duration?

    /// Options with the given timeout.
    public init(timeout: Duration? = nil) {
        self.timeout = timeout
    }
}
