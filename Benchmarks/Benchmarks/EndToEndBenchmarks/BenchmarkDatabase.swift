import Foundation
import Logging
import NIOCore
import PostgresNIO
import Synchronization

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

    /// A client configuration for the new database (loopback, no TLS).
    func clientConfiguration(connections: Int) -> PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: self.cluster.host ?? "127.0.0.1",
            port: self.cluster.port ?? 5432,
            username: self.cluster.user ?? "",
            password: self.cluster.password?.removingPercentEncoding,
            database: self.name,
            tls: .disable
        )
        configuration.options.maximumConnections = connections
        configuration.options.minimumConnections = connections
        return configuration
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

/// The durability baseline of Haven's writes on PostgreSQL: single-row
/// `INSERT`s of 256 bytes, each its own transaction (autocommit, so each
/// COMMIT waits for the WAL's fsync), on a pool of 16 connections to a new
/// database, with `inFlight` outstanding — what the cluster itself commits
/// per second, with no Haven in the way.
final class RawPostgresCommits: Sendable {
    private struct State {
        var database: BenchmarkDatabase?
        var client: PostgresClient?
        var task: Task<Void, Never>?
    }

    private let state = Mutex(State())
    private static let body = ByteBuffer(bytes: (0..<256).map { UInt8(truncatingIfNeeded: $0 &* 31) })

    func start(cluster: String) async throws {
        let database = try await BenchmarkDatabase.create(on: cluster)
        let client = PostgresClient(
            configuration: database.clientConfiguration(connections: 16),
            backgroundLogger: Logger(label: "haven.benchmark.postgres")
        )
        let task = Task { await client.run() }
        self.state.withLock { $0 = State(database: database, client: client, task: task) }
        try await client.query(
            "CREATE TABLE row (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body BYTEA NOT NULL)"
        )
    }

    /// `commits` single-row commits with `inFlight` outstanding; each one's time.
    func run(commits: Int, inFlight: Int) async -> [Duration] {
        guard let client = self.state.withLock({ $0.client }) else { fatalError("the baseline is not started") }
        return await timedCalls(commits, inFlight: inFlight) { _ in
            try await client.query("INSERT INTO row (body) VALUES (\(Self.body))")
        }
    }

    func stop() async {
        let state = self.state.withLock { state in
            defer { state = State() }
            return state
        }
        state.task?.cancel()
        await state.task?.value
        await state.database?.drop()
    }
}

struct BenchmarkDatabaseError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
