import Foundation
import HavenProtocol
import NIOSSL
import PostgresNIO

/// Where a PostgreSQL store lives: `storage = postgres://user:password@host:port/database`.
///
/// TLS: `?sslmode=verify-full` (the default for any host but a loopback
/// address) verifies the server's certificate and name against the system's
/// trust roots, or against `sslrootcert=/path/ca.pem`. `sslmode=disable` is
/// accepted for a loopback host only (a server on the same machine): there is
/// no unencrypted connection over a network, and no mode that encrypts
/// without verifying.
package struct PostgresLocation: Sendable, Equatable {
    package var host: String
    package var port: Int
    package var username: String
    package var password: String?
    package var database: String
    package var tls: TLSMode
    /// A CA certificate file to verify the server against (instead of the system's roots).
    package var rootCertificate: String?

    package enum TLSMode: String, Sendable {
        case disable
        case verifyFull = "verify-full"
    }

    /// Parses a `postgres://` (or `postgresql://`) URL.
    ///
    /// - Throws: ``HavenError`` INVALID_ARGUMENT saying what is wrong, never
    ///   repeating the password.
    package init(url text: String) throws {
        func invalid(_ why: String) -> HavenError {
            HavenError(
                code: .invalidArgument,
                message: "storage: \(why) (expected postgres://user:password@host:port/database)"
            )
        }
        guard let url = URLComponents(string: text), let scheme = url.scheme,
            scheme == "postgres" || scheme == "postgresql"
        else { throw invalid("not a postgres:// URL") }
        guard let host = url.host, !host.isEmpty else { throw invalid("no host") }
        guard let user = url.user, !user.isEmpty else { throw invalid("no user") }
        let database = String(url.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else { throw invalid("no database name") }
        self.host = host
        self.port = url.port ?? 5432
        self.username = user.removingPercentEncoding ?? user
        self.password = url.password.map { $0.removingPercentEncoding ?? $0 }
        self.database = database
        let loopback = ["127.0.0.1", "::1", "localhost"].contains(host)
        var mode: TLSMode = loopback ? .disable : .verifyFull
        for item in url.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let value = item.value, let parsed = TLSMode(rawValue: value) else {
                    throw invalid("sslmode must be verify-full or disable")
                }
                mode = parsed
            case "sslrootcert":
                guard let path = item.value, !path.isEmpty else { throw invalid("sslrootcert needs a file") }
                self.rootCertificate = path
            default:
                throw invalid("unknown parameter \(item.name)")
            }
        }
        guard mode == .verifyFull || loopback else {
            throw invalid("sslmode=disable is only accepted for a loopback host; a remote database needs TLS")
        }
        self.tls = mode
    }

    /// The URL, password included: for a configuration, never for a log.
    package var url: String {
        var components = URLComponents()
        components.scheme = "postgres"
        components.user = self.username
        components.password = self.password
        components.host = self.host
        components.port = self.port
        components.path = "/" + self.database
        var query = [URLQueryItem(name: "sslmode", value: self.tls.rawValue)]
        if let root = self.rootCertificate { query.append(URLQueryItem(name: "sslrootcert", value: root)) }
        components.queryItems = query
        return components.string ?? ""
    }

    /// The URL without its password, for logs and status.
    package var redacted: String {
        "postgres://\(self.username)@\(self.host):\(self.port)/\(self.database)?sslmode=\(self.tls.rawValue)"
    }

    package func tlsConfiguration() throws -> TLSConfiguration? {
        guard self.tls == .verifyFull else { return nil }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .fullVerification
        configuration.minimumTLSVersion = .tlsv12
        if let root = self.rootCertificate {
            configuration.trustRoots = .file(root)
        }
        return configuration
    }

    package func clientConfiguration(maximumConnections: Int) throws -> PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS = try self.tlsConfiguration().map { .require($0) } ?? .disable
        var configuration = PostgresClient.Configuration(
            host: self.host,
            port: self.port,
            username: self.username,
            password: self.password,
            database: self.database,
            tls: tls
        )
        configuration.options.maximumConnections = maximumConnections
        configuration.options.connectTimeout = .seconds(10)
        return configuration
    }

    package func connectionConfiguration() throws -> PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS =
            try self.tlsConfiguration().map { .require(try NIOSSLContext(configuration: $0)) } ?? .disable
        var configuration = PostgresConnection.Configuration(
            host: self.host,
            port: self.port,
            username: self.username,
            password: self.password,
            database: self.database,
            tls: tls
        )
        configuration.options.connectTimeout = .seconds(10)
        return configuration
    }
}
