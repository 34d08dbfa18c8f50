import ArgumentParser
import Foundation
import HavenClient
import HavenProtocol

/// The server's status at a glance.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Shows the server's readiness, version, uptime, connections, calls and failures, database size, certificate expiries and last backup.",
        discussion: """
            The same figures, and more, are scraped by Prometheus from the operations
            listener's /metrics (ops_listen_host:ops_listen_port, loopback by default);
            docs/OPERATIONS.md lists them.
            """
    )
    @OptionGroup var server: ServerOptions

    func run() async throws {
        try await withAdminClient(self.server) { client in
            let status = try await client.operations.getServerStatus()
            if self.server.json { return try self.server.print(status) }
            let uptime = Int(Date().timeIntervalSince1970) - Int(status.startedAtUnixMs / 1000)
            CLI.fields([
                ("Server", "\(client.configuration.serverAddress), havend \(status.version)"),
                (
                    "Ready",
                    status.ready ? "yes" : "NO: " + status.readinessProblems.joined(separator: "; ")
                ),
                ("Deployment", status.development ? "DEVELOPMENT (never store real data here)" : "production"),
                ("Up since", "\(CLI.date(status.startedAtUnixMs)) (\(Self.duration(uptime)))"),
                (
                    "Connections",
                    "\(status.connections) open; since the start \(status.handshakeFailures) failed TLS handshakes, \(status.connectionsRefused) refused, \(status.writeStalls) closed for not reading"
                ),
                (
                    "Calls",
                    "\(String(format: "%.1f", status.callsPerSecond)) per second over the last minute; \(status.callsInFlight) in flight; \(status.callsTotal) in all"
                ),
                (
                    "Server faults",
                    "\(status.callsFailedLastMinute) calls in the last minute (INTERNAL, UNAVAILABLE, …)"
                ),
                ("Database", Self.bytes(status.databaseBytes)),
                ("Audit trail", "\(status.auditEntries) entries"),
                ("Accounts", "\(status.accounts) (\(status.accountsEnabled) enabled)"),
                (
                    "Client certificates",
                    "\(status.certificatesExpiringSoon) expire within 14 days"
                        + (status.soonestCertificateExpiresAtUnixMs == 0
                            ? "" : "; the soonest \(CLI.date(status.soonestCertificateExpiresAtUnixMs))")
                ),
                ("Server certificate", "expires \(CLI.date(status.serverCertificateExpiresAtUnixMs))"),
                (
                    "Last backup",
                    status.lastBackupAtUnixMs == 0
                        ? "never"
                        : "\(CLI.date(status.lastBackupAtUnixMs)) (SHA-256 \(status.lastBackupSha256.prefix(16))…)"
                ),
                (
                    "Backup key",
                    status.backupKeyFingerprint.isEmpty
                        ? "not configured (backup_public_key)" : status.backupKeyFingerprint
                ),
            ])
        }
    }

    static func duration(_ seconds: Int) -> String {
        let days = seconds / 86400
        let hours = seconds % 86400 / 3600
        let minutes = seconds % 3600 / 60
        return days > 0 ? "\(days) d \(hours) h" : hours > 0 ? "\(hours) h \(minutes) min" : "\(minutes) min"
    }

    static func bytes(_ count: UInt64) -> String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) bytes" : "\(String(format: "%.1f", value)) \(units[unit])"
    }
}
