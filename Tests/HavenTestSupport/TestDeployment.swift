import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Tracing

/// PEM credentials for a test client.
public struct TestCredentials: Sendable {
    public var caPEM: String
    public var certificatePEM: String
    public var privateKeyPEM: String

    public init(caPEM: String, certificatePEM: String, privateKeyPEM: String) {
        self.caPEM = caPEM
        self.certificatePEM = certificatePEM
        self.privateKeyPEM = privateKeyPEM
    }
}

/// A development data directory in a temporary folder, with accounts for
/// every role, and servers started on it on a free loopback port.
public final class TestDeployment: Sendable {
    public let directory: TemporaryDirectory
    package let dataDirectory: DataDirectory
    package let authority: CertificateAuthority

    /// Accounts created for tests: `admin` (from initialization), `director-kol`
    /// (director of KOL and MUM), `worker-kol` (caseworker in KOL), `worker-mnl`
    /// (caseworker in MNL), `partner-asha` (partner `ptn-asha` once registered),
    /// `auditor`, and `disabled` (a caseworker whose account is disabled).
    public init() throws {
        self.directory = try TemporaryDirectory("haven-deployment")
        self.dataDirectory = DataDirectory(self.directory.url.appendingPathComponent("data"))
        try self.dataDirectory.initialize(development: true)
        self.authority = try self.dataDirectory.issuingAuthority()
        let store = try SQLiteStore(path: self.dataDirectory.databaseFile)
        try store.writeSynchronously { tx in
            for account in [
                Account(
                    id: "director-kol",
                    displayName: "Director (fictional)",
                    role: .director,
                    officeCodes: ["KOL", "MUM"],
                    createdAtUnixMs: 1
                ),
                Account(
                    id: "worker-kol",
                    displayName: "Caseworker Kolkata (fictional)",
                    role: .caseworker,
                    officeCodes: ["KOL"],
                    createdAtUnixMs: 1
                ),
                Account(
                    id: "worker-mnl",
                    displayName: "Caseworker Manila (fictional)",
                    role: .caseworker,
                    officeCodes: ["MNL"],
                    createdAtUnixMs: 1
                ),
                Account(
                    id: "partner-asha",
                    displayName: "Asha Home (fictional)",
                    role: .partner,
                    partnerID: "ptn-asha",
                    createdAtUnixMs: 1
                ),
                Account(id: "auditor", displayName: "Auditor (fictional)", role: .auditor, createdAtUnixMs: 1),
                Account(
                    id: "disabled",
                    displayName: "Former caseworker (fictional)",
                    role: .caseworker,
                    officeCodes: ["KOL"],
                    enabled: false,
                    createdAtUnixMs: 1
                ),
            ] {
                try tx.saveAccount(account, auditedAs: "test", action: "accounts.add", at: 1)
            }
        }
    }

    deinit {
        self.directory.remove()
    }

    /// The deployment's root CA certificate.
    public var caPEM: String {
        get throws { try String(contentsOfFile: self.dataDirectory.caCertificateFile, encoding: .utf8) }
    }

    /// Changes a stored account, as `haven-admin accounts` does on the data
    /// directory while the server runs.
    package func updateAccount(_ id: String, _ change: (inout Account) -> Void) throws {
        let store = try SQLiteStore(path: self.dataDirectory.databaseFile)
        try store.writeSynchronously { tx in
            guard var account = try tx.account(id: id) else {
                throw HavenError(code: .notFound, message: "no test account \(id)")
            }
            change(&account)
            try tx.saveAccount(account, auditedAs: "test", action: "accounts.update", at: 1)
        }
    }

    /// Issues client credentials for an account and binds them to it (as
    /// enrolment would), unless `register` is false (a certificate this
    /// deployment's CA signed but no account holds).
    package func credentials(
        for accountID: String,
        validity: TimeInterval = 3600,
        now: Date = Date(),
        register: Bool = true,
        in directory: DataDirectory? = nil
    ) throws -> TestCredentials {
        let credential = try self.authority.issueClientCertificate(accountID: accountID, validity: validity, now: now)
        if register {
            let stored = StoredCredential(credential.certificate, accountID: accountID, issuedBy: "enrolment", now: now)
            let store = try SQLiteStore(path: (directory ?? self.dataDirectory).databaseFile)
            try store.writeSynchronously { tx in
                try tx.saveCredential(stored)
                try tx.appendAudit(NewAuditEntry(atUnixMs: 1, principalID: "test", action: "credentials.issue"))
            }
        }
        return TestCredentials(
            caPEM: try self.caPEM,
            certificatePEM: credential.certificatePEM,
            privateKeyPEM: credential.privateKeyPEM
        )
    }

    /// Starts a server on 127.0.0.1 and a free port.
    package func start(
        on directory: DataDirectory? = nil,
        configure: (inout ServerConfiguration) -> Void = { _ in },
        router makeRouter: (ServiceEnvironment) -> Router = HavenServices.router,
        logger chosenLogger: Logger? = nil,
        tracer: (any Tracer)? = nil
    ) async throws -> RunningServer {
        var configuration = ServerConfiguration()
        configuration.listenPort = 0
        configuration.opsListenPort = 0
        // Followed feeds never finish by themselves: keep shutdowns in tests short.
        configuration.shutdownGrace = .milliseconds(200)
        configure(&configuration)
        var logger = Logger(label: "haven-test-server")
        logger.logLevel = ProcessInfo.processInfo.environment["HAVEN_TEST_LOG"] == nil ? .critical : .debug
        if let chosenLogger { logger = chosenLogger }
        let haven = try await HavenComposition.open(
            directory ?? self.dataDirectory,
            configuration: configuration,
            logger: logger,
            tracer: tracer ?? NoOpTracer(),
            router: makeRouter
        )
        let (server, backend, operations) = (haven.server, haven.backend, haven.operations)
        // The store's services (SQLite's checkpointer; PostgreSQL's pool and
        // change listener) run beside the server (a service group would start
        // them first and stop them last).
        let services = backend.services
        let storeTask =
            services.isEmpty
            ? nil
            : Task {
                try await withThrowingDiscardingTaskGroup { group in
                    for service in services { group.addTask { try await service.run() } }
                }
            }
        let task = Task { try await server.run() }
        let operationsTask = Task { try await operations.run() }
        let address = try await server.listeningAddress
        return RunningServer(
            server: server,
            task: task,
            port: address.port!,
            backend: backend,
            storeTask: storeTask,
            operations: operations,
            operationsTask: operationsTask,
            operationsURL: try await operations.url
        )
    }
}

extension TestDeployment {
    /// Starts a server, runs `body` with it, and stops it gracefully
    /// afterwards, whether `body` returns or throws (no stray task left to stop it).
    package func serving<Result>(
        configure: (inout ServerConfiguration) -> Void = { _ in },
        _ body: (RunningServer) async throws -> Result
    ) async throws -> Result {
        let server = try await self.start(configure: configure)
        let result: Result
        do {
            result = try await body(server)
        } catch {
            try? await server.stop()
            throw error
        }
        try await server.stop()
        return result
    }
}

/// A server started by ``TestDeployment/start(configure:)``.
public final class RunningServer: Sendable {
    package let server: TLSServer
    let task: Task<Void, any Error>
    public let port: Int
    package let backend: StoreBackend
    let storeTask: Task<Void, any Error>?
    let operations: OperationsListener
    let operationsTask: Task<Void, any Error>
    /// The operations listener, e.g. `http://127.0.0.1:41234` (append `/metrics`).
    public let operationsURL: String

    init(
        server: TLSServer,
        task: Task<Void, any Error>,
        port: Int,
        backend: StoreBackend,
        storeTask: Task<Void, any Error>?,
        operations: OperationsListener,
        operationsTask: Task<Void, any Error>,
        operationsURL: String
    ) {
        self.server = server
        self.task = task
        self.port = port
        self.backend = backend
        self.storeTask = storeTask
        self.operations = operations
        self.operationsTask = operationsTask
        self.operationsURL = operationsURL
    }

    /// Waits for the server's run to end by itself (no shutdown asked) and
    /// returns how: nil, or the error it failed with.
    package func runEnded() async -> (any Error)? {
        do {
            try await self.task.value
            return nil
        } catch {
            return error
        }
    }

    /// Shuts down gracefully and waits until it has stopped (the operations listener last).
    public func stop() async throws {
        self.server.initiateShutdown()
        try await self.task.value
        self.operations.stop()
        try await self.operationsTask.value
        self.storeTask?.cancel()
        try? await self.storeTask?.value
    }

    /// The store the server runs on.
    package var store: any RecordStore { self.backend.store }

    /// The embedded store (every server but those started on PostgreSQL).
    package var sqlite: SQLiteStore {
        get throws {
            guard let store = self.backend.sqlite else {
                throw HavenError(code: .failedPrecondition, message: "this server keeps its records in PostgreSQL")
            }
            return store
        }
    }
}
