import Foundation
import HavenProtocol
import HavenStore
import X509

/// Whether this server should be sent work: its store open and writable, its
/// keys loaded, its listener accepting. `/health/ready` answers with it;
/// liveness (`/health/live`) asks nothing but that the process answers.
package struct Readiness: Sendable {
    /// One check and, when it fails, why (a fixed text: never identities or paths).
    package struct Check: Sendable, Equatable {
        package var name: String
        package var problem: String?
    }

    package var checks: [Check]

    package var isReady: Bool { self.checks.allSatisfy { $0.problem == nil } }

    /// `{"status":"ready","checks":{"store":"ok",…}}`: what `/health/ready` sends.
    package var json: String {
        let checks = self.checks.map { check in
            "\(JSONText.quoted(check.name)):\(JSONText.quoted(check.problem ?? "ok"))"
        }
        return "{\"status\":\"\(self.isReady ? "ready" : "not ready")\",\"checks\":{\(checks.joined(separator: ","))}}"
    }

    /// Runs every check.
    package static func check(
        store: (any StoreMaintenance)?,
        keys: StoreKeys?,
        listenerAccepting: Bool
    ) async -> Readiness {
        var storeProblem: String? = "no store"
        if let store { storeProblem = await store.unwritableReason(now: .now) }
        return Readiness(checks: [
            Check(name: "store", problem: storeProblem),
            Check(name: "keys", problem: keys?.hasMasterKey == true ? nil : "no master key loaded"),
            Check(name: "listener", problem: listenerAccepting ? nil : "not accepting connections"),
        ])
    }
}

/// Facts about the deployment that the status method and the metrics show,
/// read in one place.
package struct DeploymentFacts: Sendable {
    package var accounts = 0
    package var accountsEnabled = 0
    /// Unrevoked certificates of enabled accounts that expire within the horizon.
    package var certificatesExpiringSoon = 0
    /// The soonest expiry among unrevoked, unexpired certificates of enabled accounts.
    package var soonestCertificateExpiryUnixMs: Int64?
    package var auditEntries: UInt64 = 0
    package var serverCertificateExpiry: Date?

    /// Reads them; `soonWithinMs` is the horizon of "expiring soon" (14 days).
    package static func read(
        _ environment: ServiceEnvironment,
        nowUnixMs now: Int64,
        soonWithinMs: Int64 = 14 * 86_400_000
    ) async throws -> DeploymentFacts {
        var facts = try await environment.store.read { tx in
            var facts = DeploymentFacts()
            let accounts = try tx.accounts()
            facts.accounts = accounts.count
            for account in accounts where account.enabled {
                facts.accountsEnabled += 1
                for credential in try tx.credentials(accountID: account.id)
                where !credential.isRevoked && credential.notValidAfterUnixMs > now {
                    if credential.notValidAfterUnixMs <= now + soonWithinMs { facts.certificatesExpiringSoon += 1 }
                    facts.soonestCertificateExpiryUnixMs = min(
                        facts.soonestCertificateExpiryUnixMs ?? .max,
                        credential.notValidAfterUnixMs
                    )
                }
            }
            facts.auditEntries = try tx.auditSize()
            return facts
        }
        if let directory = environment.operations.directory,
            let text = try? String(contentsOfFile: directory.serverCertificateFile, encoding: .utf8),
            let certificate = try? Certificate(firstPEMIn: text)
        {
            facts.serverCertificateExpiry = certificate.notValidAfter
        }
        return facts
    }
}

extension ServiceEnvironment {
    /// The server's readiness, as `/health/ready` and the status method report it.
    package func readiness() async -> Readiness {
        await Readiness.check(
            store: self.operations.database,
            keys: self.keys.keys,
            listenerAccepting: self.operations.statistics.isAccepting
        )
    }
}
