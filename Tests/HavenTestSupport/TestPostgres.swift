import Foundation
import HavenProtocol
import HavenStore
import Logging
import PostgresNIO
import Testing

/// The PostgreSQL cluster the tests of the PostgreSQL store run against:
/// `HAVEN_TEST_POSTGRES_URL` (`.ci/run` starts a throwaway cluster with
/// `scripts/postgres-cluster.sh` and sets it). Each test gets a database of
/// its own, dropped afterwards.
///
/// Without the variable, those tests are skipped, and say so with the reason
/// (the PostgreSQL suites are `.enabled(if: TestPostgres.isEnabled, …)`,
/// and the conformance suite runs its PostgreSQL cases only then) — except
/// in CI (`CI=true`), where they always run, so that a missing cluster fails
/// instead of passing unseen.
package enum TestPostgres {
    package static var url: String? {
        ProcessInfo.processInfo.environment["HAVEN_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Whether the PostgreSQL tests run: with a cluster, and always in CI.
    package static var isEnabled: Bool {
        Self.url != nil || ProcessInfo.processInfo.environment["CI"] == "true"
    }

    /// Why they are skipped when they are.
    package static let skipped: Comment =
        "no PostgreSQL cluster (set HAVEN_TEST_POSTGRES_URL; scripts/postgres-cluster.sh start DIR prints one)"

    /// A new, empty database on the test cluster, and what drops it.
    package static func freshDatabase() async throws -> (location: PostgresLocation, drop: @Sendable () async -> Void) {
        guard let url = Self.url else {
            throw HavenError(
                code: .failedPrecondition,
                message: "the PostgreSQL tests need HAVEN_TEST_POSTGRES_URL (.ci/run starts a cluster and sets it)"
            )
        }
        let base = try PostgresLocation(url: url)
        var generator = SystemRandomNumberGenerator()
        let name = "haven_test_\(String(generator.next() as UInt64, radix: 16))"
        try await Self.onServer(base, "CREATE DATABASE \(name)")
        var location = base
        location.database = name
        return (location, { try? await Self.onServer(base, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)") })
    }

    /// Runs one statement on the cluster's base database.
    package static func onServer(_ base: PostgresLocation, _ statement: String) async throws {
        let connection = try await PostgresConnection.connect(
            configuration: try base.connectionConfiguration(),
            id: 1,
            logger: Logger(label: "haven.test.postgres")
        )
        do {
            try await connection.query(
                PostgresQuery(unsafeSQL: statement),
                logger: Logger(label: "haven.test.postgres")
            )
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }

    /// The first column of the first row of a query, as a count.
    package static func count(_ location: PostgresLocation, _ query: String) async throws -> Int64 {
        let connection = try await PostgresConnection.connect(
            configuration: try location.connectionConfiguration(),
            id: 1,
            logger: Logger(label: "haven.test.postgres")
        )
        do {
            var count: Int64 = 0
            for try await (value) in try await connection.query(
                PostgresQuery(unsafeSQL: query),
                logger: Logger(label: "haven.test.postgres")
            ).decode(Int64.self) {
                count = value
            }
            try await connection.close()
            return count
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// Opens a PostgreSQL store on a fresh database, runs it around `body`,
    /// then stops it and drops the database.
    package static func withStore(
        keys: StoreKeys?,
        instruments: StoreInstruments = .none,
        _ body: (PostgresStore, PostgresLocation) async throws -> Void
    ) async throws {
        let (location, drop) = try await Self.freshDatabase()
        do {
            let store = try await PostgresStore.open(location, keys: keys, instruments: instruments)
            try await store.whileRunning { try await body(store, location) }
        } catch {
            await drop()
            throw error
        }
        await drop()
    }
}
