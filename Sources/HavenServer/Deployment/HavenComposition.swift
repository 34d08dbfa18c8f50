import Foundation
import HavenProtocol
import HavenStore
import Logging
import Prometheus
import ServiceLifecycle
import Tracing

/// The one composition root: builds a running Haven from a data directory and
/// a configuration. `havend`, the embedded server and the tests all use it.
package struct HavenComposition: Sendable {
    /// The store, whichever `storage` chose.
    package let store: any RecordStore
    /// The same store, as itself (for what only one kind of store does).
    package let backend: StoreBackend
    package let environment: ServiceEnvironment
    package let server: TLSServer
    package let checkpoints: CheckpointService
    package let retention: RetentionService
    /// `/metrics`, `/health/live`, `/health/ready`.
    package let operations: OperationsListener
    /// What `/metrics` shows.
    package let metricsRegistry: PrometheusCollectorRegistry

    /// What `/metrics` shows now, in Prometheus' text format.
    package func metricsText() -> String { self.metricsRegistry.emitToString() }

    /// Opens the data directory's keys and database and builds the services.
    ///
    /// - Parameters:
    ///   - auditing: Only the benchmark baseline of the audit trail's cost
    ///     turns it off (through `HavenEmbedding`'s SPI).
    ///   - tracer: Where spans go; by default the process's
    ///     (`InstrumentationSystem.tracer`: none unless havend's embedder
    ///     bootstrapped one, e.g. swift-otel).
    package static func open(
        _ directory: DataDirectory,
        configuration: ServerConfiguration,
        logger: Logger,
        auditing: Bool = true,
        tracer: (any Tracer)? = nil,
        router makeRouter: (ServiceEnvironment) -> Router = HavenServices.router
    ) async throws -> HavenComposition {
        let tracer = tracer ?? InstrumentationSystem.tracer
        // Each server its own registry: what /metrics shows is this server's alone.
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = ServerMetrics.durationBuckets
        factory.valueHistogramBuckets = ServerMetrics.valueBuckets
        let metrics = ServerMetrics(factory: factory)
        let custodian = try KeyCustodian.load(masterKeyFile: directory.masterKeyFile)
        if custodian.development {
            logger.warning("using a DEVELOPMENT master key: never store real survivor data in this data directory")
        }
        let backend = try await StoreBackend.open(
            configuration,
            databaseFile: directory.databaseFile,
            keys: custodian.keys,
            auditing: auditing,
            logger: logger,
            instruments: StoreInstruments(tracer: tracer, factory: factory)
        )
        do {
            return try await Self.build(
                directory,
                configuration: configuration,
                logger: logger,
                backend: backend,
                custodian: custodian,
                registry: registry,
                metrics: metrics,
                tracer: tracer,
                router: makeRouter
            )
        } catch {
            // A PostgreSQL store that will not run closes its connection now.
            await backend.postgres?.close()
            throw error
        }
    }

    private static func build(
        _ directory: DataDirectory,
        configuration: ServerConfiguration,
        logger: Logger,
        backend: StoreBackend,
        custodian: KeyCustodian,
        registry: PrometheusCollectorRegistry,
        metrics: ServerMetrics,
        tracer: any Tracer,
        router makeRouter: (ServiceEnvironment) -> Router
    ) async throws -> HavenComposition {
        let store = backend.store
        try await custodian.reconcile(store)
        let signer = try CheckpointSigner.loadOrCreate(
            at: directory.auditSigningKeyFile,
            development: custodian.development
        )
        // Certificates of releases before credentials were stored: only ever in a SQLite database.
        let adopted = try backend.sqlite.map { try directory.adoptLegacyCredentials(store: $0) } ?? 0
        if adopted > 0 {
            logger.notice(
                "bound certificates issued before this version to their accounts",
                metadata: ["count": "\(adopted)"]
            )
        }
        let authority = try directory.credentialAuthority()
        if authority.issuing.intermediates.isEmpty {
            logger.warning(
                "this deployment has no issuing CA: the root CA's key (tls/ca-key.pem) signs certificates and must stay on this machine; see docs/OPERATIONS.md to split it"
            )
        }
        let statistics = ServerStatistics(metrics: metrics)
        let environment = ServiceEnvironment(
            store: store,
            keys: custodian,
            checkpoints: signer,
            authority: authority,
            operations: Operations(
                directory: directory,
                database: backend.maintenance,
                backupRecipient: configuration.backupPublicKey.isEmpty
                    ? nil : try BackupKey.publicKey(base64: configuration.backupPublicKey),
                statistics: statistics,
                development: custodian.development
            )
        )
        let server = try TLSServer(
            configuration: configuration,
            tls: try TLSMaterial(dataDirectory: directory),
            store: store,
            router: makeRouter(environment),
            logger: logger,
            statistics: statistics,
            tracer: tracer
        )
        let operations = OperationsListener(
            host: configuration.opsListenHost,
            port: configuration.opsListenPort,
            sources: OperationsListener.Sources(
                registry: registry,
                metrics: metrics,
                readiness: { await environment.readiness() },
                facts: { ready in
                    var facts = ServerMetrics.Facts(
                        ready: ready,
                        databaseBytes: Int64(clamping: await backend.maintenance.databaseBytes())
                    )
                    if let deployment = try? await DeploymentFacts.read(environment, nowUnixMs: environment.nowUnixMs) {
                        facts.auditEntries = deployment.auditEntries
                        facts.serverCertificateExpiry = deployment.serverCertificateExpiry
                        facts.soonestAccountCertificateExpiry = deployment.soonestCertificateExpiryUnixMs.map {
                            Date(timeIntervalSince1970: Double($0) / 1000)
                        }
                    }
                    return facts
                }
            ),
            logger: logger
        )
        return HavenComposition(
            store: store,
            backend: backend,
            environment: environment,
            server: server,
            checkpoints: CheckpointService(
                signer: signer,
                store: store,
                interval: configuration.checkpointInterval,
                logger: logger,
                now: { environment.nowUnixMs }
            ),
            retention: RetentionService(
                environment: environment,
                interval: configuration.retentionInterval,
                logger: logger
            ),
            operations: operations,
            metricsRegistry: registry
        )
    }

    /// The services to run, in start order: a service group stops them in
    /// reverse, so the listener drains first, the store (PostgreSQL's pool)
    /// stops after everything that uses it (readiness already says no), the
    /// last checkpoint covers every call it served, and the operations
    /// listener answers until the very end.
    package var services: [any Service] {
        self.backend.services + [self.operations, self.checkpoints, self.retention, self.server]
    }
}

/// Applies retention policies on a schedule: a `Service` of havend's group.
package struct RetentionService: Service {
    let environment: ServiceEnvironment
    let interval: Duration
    let logger: Logger

    package func run() async throws {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                let erased = try await Retention.apply(self.environment, now: self.environment.nowUnixMs)
                if !erased.isEmpty {
                    self.logger.notice("retention erased what was due", metadata: ["items": "\(erased.count)"])
                }
            } catch {
                self.logger.error("retention could not run", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
        }
    }
}
