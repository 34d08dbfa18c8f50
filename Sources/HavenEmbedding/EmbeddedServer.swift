import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import Logging
import NIOCore
import ServiceLifecycle

/// A Haven server inside this process, on a fresh development data directory.
///
/// For benchmarks and load tests on one machine: it listens on 127.0.0.1 and
/// a free port, with its own CA, master key and accounts, none of them shared
/// with any deployment. Not for real data. Its records are kept in the data
/// directory's SQLite file, or in a new PostgreSQL database (`storage`), which
/// further instances can share (``startInstance()``), as several havend
/// instances behind a load balancer do.
///
/// ```swift
/// let server = try await EmbeddedServer.start(in: temporaryDirectory)
/// let bundle = try await server.addAccount(id: "load", role: .caseworker, offices: ["KOL"])
/// …
/// try await server.stop()
/// ```
public final class EmbeddedServer: Sendable {
    /// The port it listens on, on 127.0.0.1.
    public let port: Int
    /// The credentials bundle of the development admin account.
    public let adminCredentials: URL
    private let directory: DataDirectory
    private let configuration: ServerConfiguration
    private let auditing: Bool
    private let group: ServiceGroup
    private let task: Task<Void, any Error>
    private let store: any RecordStore
    private let metricsText: @Sendable () -> String

    private init(
        port: Int,
        adminCredentials: URL,
        directory: DataDirectory,
        configuration: ServerConfiguration,
        auditing: Bool,
        group: ServiceGroup,
        task: Task<Void, any Error>,
        store: any RecordStore,
        metricsText: @escaping @Sendable () -> String
    ) {
        self.port = port
        self.adminCredentials = adminCredentials
        self.directory = directory
        self.configuration = configuration
        self.auditing = auditing
        self.group = group
        self.task = task
        self.store = store
        self.metricsText = metricsText
    }

    /// What the server's `/metrics` endpoint shows now, in Prometheus' text
    /// format: for benchmarks and tools in the same process that read the
    /// server's own measures (its writer's busy time, its commits' sizes)
    /// without an HTTP client. docs/OPERATIONS.md lists the metrics.
    public func metrics() -> String { self.metricsText() }

    /// The server's certificate (PEM file), valid for localhost and 127.0.0.1.
    public var serverCertificateFile: String { self.directory.serverCertificateFile }
    /// The server's private key (PEM file).
    public var serverKeyFile: String { self.directory.serverKeyFile }
    /// The deployment CA's certificate (PEM file).
    public var caCertificateFile: String { self.directory.caCertificateFile }

    /// Reads a case from the server's store, as `GetCase` does after its access
    /// check: for a peer server in a benchmark to do the same work.
    ///
    /// - Parameter id: The case id.
    /// - Returns: The case, or nil when there is none.
    public func readCase(id: String) async throws -> Haven_V1_Case? {
        try await self.store.read { tx in
            try tx.load(Haven_V1_Case.self, id: id).map { try CaseReads.withLatest($0, tx) }
        }
    }

    /// Creates a development data directory in `directory` (which must be
    /// empty or absent) and starts a server on it.
    ///
    /// - Parameters:
    ///   - directory: Where the data directory goes.
    ///   - maxConcurrentCalls: Calls in flight allowed per connection.
    ///   - storage: Where records are kept: nil for the data directory's
    ///     SQLite file, or a new PostgreSQL database
    ///     (`postgres://user:password@host:port/database`, as havend's
    ///     `storage`), into which the new deployment is copied first.
    /// - Returns: The running server.
    /// - Throws: ``HavenError`` when the directory cannot be created, the
    ///   database is not new or cannot be reached, or the server cannot listen.
    public static func start(
        in directory: URL,
        maxConcurrentCalls: Int = 1024,
        storage: String? = nil
    ) async throws -> EmbeddedServer {
        try await self.start(in: directory, maxConcurrentCalls: maxConcurrentCalls, auditing: true, storage: storage)
    }

    /// Starts a server whose store keeps **no audit trail**: only for the
    /// benchmark that measures what the trail costs (the same write with and
    /// without its entry, in one run). Not reachable from havend or any
    /// configuration; an SPI so that no ordinary import sees it.
    @_spi(AuditCostBaseline)
    public static func start(
        in directory: URL,
        maxConcurrentCalls: Int = 1024,
        auditing: Bool,
        storage: String? = nil
    ) async throws
        -> EmbeddedServer
    {
        let data = DataDirectory(directory)
        let report = try data.initialize(development: true)
        var configuration = ServerConfiguration()
        configuration.listenPort = 0
        configuration.opsListenPort = 0
        configuration.maxConcurrentCalls = maxConcurrentCalls
        configuration.shutdownGrace = .milliseconds(500)
        if let storage {
            let location = try PostgresLocation(url: storage)
            _ = try await data.copyDatabase(
                into: location,
                principalID: DataDirectory.localOperator,
                atUnixMs: Int64(Date().timeIntervalSince1970 * 1000)
            )
            configuration.storage = location.url
        }
        return try await Self.run(
            data,
            configuration: configuration,
            auditing: auditing,
            adminCredentials: URL(fileURLWithPath: report.adminCredentials ?? data.credentialsDirectory("admin"))
        )
    }

    /// Starts another server on the same data directory (keys, TLS files)
    /// and the same PostgreSQL database, listening on a port of its own: a
    /// second havend instance, as behind a load balancer. Stop it on its own.
    ///
    /// - Throws: ``HavenError`` FAILED_PRECONDITION when this server keeps
    ///   its records in SQLite, which one instance alone may open.
    public func startInstance() async throws -> EmbeddedServer {
        guard self.configuration.postgres != nil else {
            throw HavenError(
                code: .failedPrecondition,
                message: "only a server on PostgreSQL has further instances; start it with storage"
            )
        }
        return try await Self.run(
            self.directory,
            configuration: self.configuration,
            auditing: self.auditing,
            adminCredentials: self.adminCredentials
        )
    }

    private static func run(
        _ data: DataDirectory,
        configuration: ServerConfiguration,
        auditing: Bool,
        adminCredentials: URL
    ) async throws -> EmbeddedServer {
        var logger = Logger(label: "haven-embedded")
        logger.logLevel = .warning
        let haven = try await HavenComposition.open(
            data,
            configuration: configuration,
            logger: logger,
            auditing: auditing
        )
        let group = ServiceGroup(configuration: .init(services: haven.services, logger: logger))
        let task = Task { try await group.run() }
        let address = try await haven.server.listeningAddress
        return EmbeddedServer(
            port: address.port ?? 0,
            adminCredentials: adminCredentials,
            directory: data,
            configuration: configuration,
            auditing: auditing,
            group: group,
            task: task,
            store: haven.store,
            metricsText: { haven.metricsText() }
        )
    }

    /// Adds an account and writes its credentials bundle.
    ///
    /// - Parameters:
    ///   - id: The account id.
    ///   - role: Its role.
    ///   - offices: Offices it works in (directors, caseworkers).
    /// - Returns: The bundle directory.
    public func addAccount(id: String, role: Haven_V1_Role, offices: [String] = []) async throws -> URL {
        let now = Date()
        let at = Int64(now.timeIntervalSince1970 * 1000)
        let (directory, credential) = try self.directory.writeLocalCredentials(
            for: id,
            validity: 24 * 3600,
            now: now
        )
        try await self.store.write { tx in
            try tx.saveAccount(
                Account(id: id, displayName: id, role: role, officeCodes: offices, createdAtUnixMs: at),
                auditedAs: DataDirectory.localOperator,
                action: "accounts.add",
                at: at
            )
            try DataDirectory.register(credential, auditedAs: DataDirectory.localOperator, in: tx)
        }
        return URL(fileURLWithPath: directory)
    }

    /// Shuts down gracefully and waits until it has stopped.
    public func stop() async throws {
        await self.group.triggerGracefulShutdown()
        try await self.task.value
    }
}
