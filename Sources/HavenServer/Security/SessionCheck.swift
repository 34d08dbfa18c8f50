import Foundation
import HavenProtocol
import HavenStore

/// Whether an authenticated connection may go on serving its principal.
///
/// The server asks this for every open connection a few times a second
/// (``TLSServer``'s session watch), with the account as stored now: a disabled
/// or removed account, a changed role, office list or partner, and an expired
/// client certificate each end the connection with a go-away carrying the
/// reason, and its calls — followed feeds included — stop at once. Writes
/// also check the account inside their transaction (``AccessPolicy/requireCurrent(_:_:)``).
package enum SessionCheck {
    /// How often the server compares open connections with the stored accounts.
    package static let interval: Duration = .milliseconds(250)

    /// How long a connection without a client certificate may stay open to enrol.
    package static let enrollingTime: TimeInterval = 30

    /// Why the connection of `principal` must end, or nil while it may go on.
    ///
    /// - Parameters:
    ///   - account: The account as stored now (nil when it no longer exists).
    ///   - now: The current time, for the certificate's expiry.
    ///   - revoked: Serials of revoked certificates.
    ///   - inactivePartners: Partner organisations that are deactivated.
    package static func ending(
        _ principal: Principal,
        account: Account?,
        revoked: Set<String> = [],
        inactivePartners: Set<String> = [],
        now: Date
    ) -> HavenError? {
        if principal.isEnrolling {
            guard principal.certificateExpiresAt > now else {
                return HavenError(code: .unauthenticated, message: "enrolment connection timed out; reconnect to enrol")
            }
            return nil
        }
        guard !revoked.contains(principal.credentialSerial) else {
            return HavenError(code: .unauthenticated, message: "certificate revoked; ask your administrator")
        }
        guard let account else {
            return HavenError(code: .unauthenticated, message: "account removed")
        }
        guard account.enabled else {
            return HavenError(code: .unauthenticated, message: "account disabled")
        }
        guard principal.isCurrent(account) else {
            return HavenError(
                code: .unauthenticated,
                message: "account changed (role, offices or partner); reconnect to continue with the new rights"
            )
        }
        guard principal.certificateExpiresAt > now else {
            return HavenError(code: .unauthenticated, message: "client certificate expired; renew it and reconnect")
        }
        guard AccessPolicy.organisation(of: account).map({ !inactivePartners.contains($0) }) ?? true else {
            return HavenError(code: .unauthenticated, message: "partner organisation deactivated")
        }
        return nil
    }
}
