import Foundation
import HavenProtocol
import HavenStore

/// `haven.v1.OperationsService`: the deployment's status and online backups, for admins.
struct OperationsService: OperationsServiceHandler {
    let environment: ServiceEnvironment

    private var env: ServiceEnvironment { self.environment }

    func getServerStatus(
        _ request: Haven_V1_GetServerStatusRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_ServerStatus {
        try self.env.policy.check(context.principal, .administer)
        let operations = self.env.operations
        let now = self.env.nowUnixMs
        let facts = try await DeploymentFacts.read(self.env, nowUnixMs: now)
        let (connections, callsTotal, callsPerSecond) = operations.statistics.snapshot()
        var status = Haven_V1_ServerStatus()
        status.version = HavenRelease.version
        status.startedAtUnixMs = Int64(operations.statistics.startedAt.timeIntervalSince1970 * 1000)
        status.connections = UInt32(clamping: connections)
        status.callsPerSecond = callsPerSecond
        status.callsTotal = callsTotal
        (status.handshakeFailures, status.connectionsRefused) = operations.statistics.refusals
        status.writeStalls = operations.statistics.writeStalls
        status.auditEntries = facts.auditEntries
        status.accounts = UInt32(clamping: facts.accounts)
        status.accountsEnabled = UInt32(clamping: facts.accountsEnabled)
        status.certificatesExpiringSoon = UInt32(clamping: facts.certificatesExpiringSoon)
        status.development = operations.development
        let readiness = await self.env.readiness()
        status.ready = readiness.isReady
        status.readinessProblems = readiness.checks.compactMap { check in check.problem.map { "\(check.name): \($0)" } }
        let load = operations.statistics.load()
        status.callsInFlight = UInt32(clamping: load.inFlight)
        status.callsFailedLastMinute = load.faultsLastMinute
        status.soonestCertificateExpiresAtUnixMs = facts.soonestCertificateExpiryUnixMs ?? 0
        if let database = operations.database {
            status.databaseBytes = await database.databaseBytes()
            if let last = try await database.lastBackup() {
                status.lastBackupAtUnixMs = last.atUnixMs
                status.lastBackupSha256 = last.sha256
            }
        }
        if let expiry = facts.serverCertificateExpiry {
            status.serverCertificateExpiresAtUnixMs = Int64(expiry.timeIntervalSince1970 * 1000)
        }
        if let recipient = operations.backupRecipient {
            status.backupKeyFingerprint = BackupKey.fingerprint(recipient)
        }
        return status
    }

    /// The largest piece of the backup file per message.
    static let chunkBytes = 1 << 20

    func createBackup(
        _ request: Haven_V1_CreateBackupRequest,
        _ context: CallContext,
        _ stream: ResponseStream<Haven_V1_BackupChunk>
    ) async throws {
        try self.env.policy.check(context.principal, .administer)
        let operations = self.env.operations
        guard let recipient = operations.backupRecipient else {
            throw HavenError(
                code: .failedPrecondition,
                message:
                    "online backups are off: set backup_public_key in haven.conf (haven-admin backup keygen) and restart havend"
            )
        }
        guard let directory = operations.directory, let database = operations.database else {
            throw HavenError(code: .failedPrecondition, message: "this server has no data directory to back up")
        }
        let output = directory.path("backup-\(UUID().uuidString).hvbk")
        defer { try? FileManager.default.removeItem(atPath: output) }
        let now = self.env.nowUnixMs
        let summary = try await BackupArchive.create(
            directory: directory,
            store: database,
            recipient: recipient,
            output: output,
            now: now
        )
        guard let input = FileHandle(forReadingAtPath: output) else {
            throw HavenError(code: .unavailable, message: "the backup file could not be read back")
        }
        defer { try? input.close() }
        while let data = try input.read(upToCount: Self.chunkBytes), !data.isEmpty {
            var chunk = Haven_V1_BackupChunk()
            chunk.data = data
            try await stream.send(chunk)
        }
        // Recorded once the whole file has been handed over.
        try await database.recordBackup(atUnixMs: now, sha256: summary.sha256)
        try await self.env.store.write { tx in
            try tx.appendAudit(
                self.env.writer.entry(
                    context,
                    outcome: .ok,
                    detail:
                        "backup \(summary.sha256.prefix(16)), \(summary.bytes) bytes, \(summary.auditEntries) audit entries"
                )
            )
        }
        var last = Haven_V1_BackupChunk()
        last.summary = summary
        try await stream.send(last)
    }
}
