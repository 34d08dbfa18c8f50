import Foundation
import HavenProtocol
import HavenStore

/// The authenticated caller of a connection: the account its client
/// certificate names. Every call on the connection runs as this principal.
package struct Principal: Sendable, Hashable {
    package var account: Account
    /// When the connection's client certificate expires (for an enrolling
    /// connection: when its time is up).
    package var certificateExpiresAt: Date
    /// The serial of the connection's client certificate, lowercase hex
    /// (empty for an enrolling connection).
    package var credentialSerial: String

    package init(account: Account, certificateExpiresAt: Date, credentialSerial: String = "") {
        self.account = account
        self.certificateExpiresAt = certificateExpiresAt
        self.credentialSerial = credentialSerial
    }

    /// A connection that presented no client certificate: it may call
    /// `EnrollmentService.Enroll` and nothing else, until `deadline`.
    package static func enrolling(until deadline: Date) -> Principal {
        Principal(
            account: Account(
                id: "",
                displayName: "enrolling client",
                role: .unspecified,
                enabled: false,
                createdAtUnixMs: 0
            ),
            certificateExpiresAt: deadline
        )
    }

    /// Whether the connection presented no certificate (enrolment only).
    package var isEnrolling: Bool { self.account.id.isEmpty }

    package var id: String { self.account.id }
    package var role: Haven_V1_Role { self.account.role }

    /// The principal as `WhoAmI` returns it.
    package var wire: Haven_V1_Principal {
        var principal = Haven_V1_Principal()
        principal.id = self.account.id
        principal.displayName = self.account.displayName
        principal.role = self.account.role
        principal.officeCodes = self.account.officeCodes
        principal.partnerID = self.account.partnerID
        principal.certificateExpiresAtUnixMs = Int64(self.certificateExpiresAt.timeIntervalSince1970 * 1000)
        return principal
    }

    /// Who recorded a change, as stored on records.
    package var actor: Haven_V1_Actor {
        var actor = Haven_V1_Actor()
        actor.principalID = self.account.id
        actor.displayName = self.account.displayName
        return actor
    }
}

extension Principal {
    /// Whether `account` (as stored now) still grants what this principal was
    /// authenticated with: enabled, same role, offices and partner.
    package func isCurrent(_ account: Account) -> Bool {
        account.enabled && account.id == self.account.id && account.role == self.account.role
            && account.officeCodes == self.account.officeCodes && account.partnerID == self.account.partnerID
    }
}
