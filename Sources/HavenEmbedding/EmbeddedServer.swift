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
/// with any deployment. Not for real data.
///
/// ```swift
/// let server = try await EmbeddedServer.start(in: temporaryDirectory)
/// let bundle = try server.addAccount(id: "load", role: .caseworker, offices: ["KOL"])
/// …
/// try await server.stop()
/// ```
public final class EmbeddedServer: Sendable {
    /// The port it listens on, on 127.0.0.1.
    public let port: Int
    /// The credentials bundle of the development admin account.
    public let adminCredentials: URL
    private let directory: DataDirectory
    private let group: ServiceGroup
    private let task: Task<Void, any Error>
    private let store: SQLiteStore

    private init(
        port: Int,
        adminCredentials: URL,
        directory: DataDirectory,
        group: ServiceGroup,
        task: Task<Void, any Error>,
        store: SQLiteStore
    ) {
        self.port = port
        self.adminCredentials = adminCredentials
        self.directory = directory
        self.group = group
        self.task = task
        self.store = store
    }

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
            try tx.load(Haven_V1_Case.self, id: id).map { try CaseReads.withLatestEvents($0, tx) }
        }
    }

    /// Creates a development data directory in `directory` (which must be
    /// empty or absent) and starts a server on it.
    ///
    /// - Parameters:
    ///   - directory: Where the data directory goes.
    ///   - maxConcurrentCalls: Calls in flight allowed per connection.
    /// - Returns: The running server.
    /// - Throws: ``HavenError`` when the directory cannot be created or the server cannot listen.
    public static func start(in directory: URL, maxConcurrentCalls: Int = 1024) async throws -> EmbeddedServer {
        try await self.start(in: directory, maxConcurrentCalls: maxConcurrentCalls, auditing: true)
    }

    /// Starts a server whose store keeps **no audit trail**: only for the
    /// benchmark that measures what the trail costs (the same write with and
    /// without its entry, in one run). Not reachable from havend or any
    /// configuration; an SPI so that no ordinary import sees it.
    @_spi(AuditCostBaseline)
    public static func start(
        in directory: URL,
        maxConcurrentCalls: Int = 1024,
        auditing: Bool
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
        var logger = Logger(label: "haven-embedded")
        logger.logLevel = .warning
        let haven = try await HavenComposition.open(
            data,
            configuration: configuration,
            logger: logger,
            auditing: auditing
        )
        // Its configuration keeps the default storage: the data directory's SQLite file.
        guard let store = haven.backend.sqlite else {
            throw HavenError(code: .internal, message: "the embedded server keeps its records in SQLite")
        }
        let group = ServiceGroup(configuration: .init(services: haven.services, logger: logger))
        let task = Task { try await group.run() }
        let address = try await haven.server.listeningAddress
        return EmbeddedServer(
            port: address.port ?? 0,
            adminCredentials: URL(fileURLWithPath: report.adminCredentials ?? data.credentialsDirectory("admin")),
            directory: data,
            group: group,
            task: task,
            store: store
        )
    }

    /// Adds an account and writes its credentials bundle.
    ///
    /// - Parameters:
    ///   - id: The account id.
    ///   - role: Its role.
    ///   - offices: Offices it works in (directors, caseworkers).
    /// - Returns: The bundle directory.
    public func addAccount(id: String, role: Haven_V1_Role, offices: [String] = []) throws -> URL {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try self.store.writeSynchronously { tx in
            try tx.saveAccount(
                Account(id: id, displayName: id, role: role, officeCodes: offices, createdAtUnixMs: now),
                auditedAs: DataDirectory.localOperator,
                action: "accounts.add",
                at: now
            )
        }
        return URL(
            fileURLWithPath: try self.directory.issueLocalCredentials(
                for: id,
                store: self.store,
                validity: 24 * 3600,
                auditedAs: DataDirectory.localOperator
            )
        )
    }

    /// Shuts down gracefully and waits until it has stopped.
    public func stop() async throws {
        await self.group.triggerGracefulShutdown()
        try await self.task.value
    }
}
