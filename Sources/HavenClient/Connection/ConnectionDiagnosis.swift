import HavenProtocol
import NIOCore
import NIOPosix
import NIOSSL

/// Turns what NIO and BoringSSL report about a failed connection into a
/// cause people can act on, naming the address, and says whether trying
/// again can help (an unreachable server: yes; a certificate the other side
/// refuses: no, not until someone changes it).
enum ConnectionDiagnosis {
    struct Cause {
        var text: String
        /// Trying again cannot help (authentication, certificates, protocol).
        var permanent: Bool
    }

    /// The cause of `error`, a failure to connect to or talk with `address`.
    static func cause(of error: any Error, hostname: String) -> Cause {
        if let error = error as? HavenError {
            return Cause(text: error.message, permanent: Self.permanentCodes.contains(error.code))
        }
        let text = "\(error)"
        let upper = text.uppercased()
        let table: [(String, Cause)] = [
            (
                "CERTIFICATE_VERIFY_FAILED",
                Cause(
                    text:
                        "the server's certificate does not verify against your CA certificate (ca.pem): another deployment's server, or an expired server certificate",
                    permanent: true
                )
            ),
            (
                "UNKNOWN_CA",
                Cause(
                    text:
                        "the server refused your client certificate: it was not issued by this deployment's CA (wrong credentials bundle?)",
                    permanent: true
                )
            ),
            (
                "CERTIFICATE_EXPIRED",
                Cause(
                    text:
                        "a certificate has expired: renew yours before it does (haven-admin credentials renew), or ask your administrator for a new enrolment code",
                    permanent: true
                )
            ),
            (
                "CERTIFICATE_REVOKED",
                Cause(text: "your certificate was revoked; ask your administrator", permanent: true)
            ),
            (
                "CERTIFICATE_REQUIRED",
                Cause(text: "the server requires a client certificate", permanent: true)
            ),
            (
                "NO_APPLICATION_PROTOCOL",
                Cause(text: "the server does not speak the Haven protocol (ALPN haven/1)", permanent: true)
            ),
            (
                "WRONG_VERSION_NUMBER",
                Cause(text: "the server does not speak TLS 1.3 (is this the Haven port?)", permanent: true)
            ),
        ]
        for (marker, cause) in table where upper.contains(marker) { return cause }
        if let error = error as? NIOSSLExtraError, "\(error)".contains("failedToValidateHostname") {
            return Cause(text: "the server's certificate is not valid for \(hostname)", permanent: true)
        }
        if upper.contains("CONNECTION REFUSED") || upper.contains("ECONNREFUSED") {
            return Cause(text: "connection refused: is havend running, and on this port?", permanent: false)
        }
        if let error = error as? ChannelError, case .connectTimeout(let amount) = error {
            return Cause(
                text: "no answer within \(amount.nanoseconds / 1_000_000) ms (a firewall, or the wrong address?)",
                permanent: false
            )
        }
        if upper.contains("NAME RESOLUTION") || upper.contains("EAI_") || upper.contains("NODENAME") {
            return Cause(text: "the host name does not resolve", permanent: false)
        }
        if let error = error as? NIOSSLError, case .uncleanShutdown = error {
            return Cause(text: "the server closed the connection during TLS", permanent: false)
        }
        return Cause(text: text, permanent: false)
    }

    /// Refusals no retry can change.
    static let permanentCodes: Set<HavenError.Code> = [
        .unauthenticated, .permissionDenied, .invalidArgument, .failedPrecondition, .unimplemented,
    ]
}
