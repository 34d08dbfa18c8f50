import Foundation
import Logging
import PostgresNIO

/// A new PostgreSQL database per benchmark fixture, on the cluster that
/// `HAVEN_BENCHMARK_POSTGRES_URL` names (a loopback cluster whose role may
/// create databases, e.g. `scripts/postgres-cluster.sh start DIR PORT durable`),
/// dropped at the end.
struct BenchmarkDatabase: Sendable {
    /// The cluster's URL, when PostgreSQL benchmarks are to run.
    static var clusterURL: String? {
        ProcessInfo.processInfo.environment["HAVEN_BENCHMARK_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The new database's URL, for `EmbeddedServer.start(storage:)`.
    let url: String
    private let name: String
    private let cluster: URLComponents

    /// Creates a new database on the cluster.
    static func create(on clusterURL: String) async throws -> BenchmarkDatabase {
        guard var components = URLComponents(string: clusterURL) else {
            throw BenchmarkDatabaseError("HAVEN_BENCHMARK_POSTGRES_URL is not a URL")
        }
        let name = "haven_bench_\(UInt32.random(in: 0...UInt32.max))"
        try await Self.execute("CREATE DATABASE \(name)", on: components)
        let cluster = components
        components.path = "/" + name
        guard let url = components.string else { throw BenchmarkDatabaseError("cannot name the new database") }
        return BenchmarkDatabase(url: url, name: name, cluster: cluster)
    }

    /// Drops the database (its servers stopped first).
    func drop() async {
        try? await Self.execute("DROP DATABASE IF EXISTS \(self.name) WITH (FORCE)", on: self.cluster)
    }

    private static func execute(_ statement: String, on components: URLComponents) async throws {
        guard let host = components.host, let user = components.user else {
            throw BenchmarkDatabaseError("HAVEN_BENCHMARK_POSTGRES_URL needs a user and a host")
        }
        guard ["127.0.0.1", "::1", "localhost"].contains(host) else {
            throw BenchmarkDatabaseError("benchmarks run against a loopback cluster only")
        }
        let configuration = PostgresConnection.Configuration(
            host: host,
            port: components.port ?? 5432,
            username: user,
            password: components.password?.removingPercentEncoding,
            database: String(components.path.dropFirst()),
            tls: .disable
        )
        let logger = Logger(label: "haven.benchmark.postgres")
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        do {
            try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }
}

struct BenchmarkDatabaseError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
