import Foundation
import HavenProtocol
import HavenStore
import Logging
import ServiceLifecycle

/// The one composition root: builds a running Haven from a data directory and
/// a configuration. `havend`, the embedded server and the tests all use it.
package struct HavenComposition: Sendable {
    package let store: SQLiteStore
    package let environment: ServiceEnvironment
    package let server: TLSServer
    package let checkpoints: CheckpointService
    package let retention: RetentionService

    /// Opens the data directory's keys and database and builds the services.
    ///
    /// - Parameters:
    ///   - auditing: Only the benchmark baseline of the audit trail's cost
    ///     turns it off (through `HavenEmbedding`'s SPI).
    package static func open(
        _ directory: DataDirectory,
        configuration: ServerConfiguration,
        logger: Logger,
        auditing: Bool = true,
        router makeRouter: (ServiceEnvironment) -> Router = HavenServices.router
    ) async throws -> HavenComposition {
        let custodian = try KeyCustodian.load(masterKeyFile: directory.masterKeyFile)
        if custodian.development {
            logger.warning("using a DEVELOPMENT master key: never store real survivor data in this data directory")
        }
        let store = try SQLiteStore(
            path: directory.databaseFile,
            keys: custodian.keys,
            auditing: auditing,
            logger: logger
        )
        try await custodian.reconcile(store)
        let signer = try CheckpointSigner.loadOrCreate(
            at: directory.auditSigningKeyFile,
            development: custodian.development
        )
        let adopted = try directory.adoptLegacyCredentials(store: store)
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
        let statistics = ServerStatistics()
        let environment = ServiceEnvironment(
            store: store,
            keys: custodian,
            checkpoints: signer,
            authority: authority,
            operations: Operations(
                directory: directory,
                database: store,
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
            statistics: statistics
        )
        return HavenComposition(
            store: store,
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
            )
        )
    }

    /// The services to run, in start order: a service group stops them in
    /// reverse, so the listener drains first and the last checkpoint covers
    /// every call it served.
    package var services: [any Service] { [self.checkpoints, self.retention, self.server] }
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
