import HavenProtocol
import NIOCore
import NIOSSL

/// A failed TLS handshake as an operator reads it: a short reason, never
/// BoringSSL's error stack (which carries the build machine's source paths).
enum HandshakeFailure {
    /// What BoringSSL's reason codes (and NIO's errors) mean, in order of precedence.
    private static let reasons: [(codes: [String], reason: String)] = [
        (["HTTP_REQUEST", "HTTPS_PROXY_REQUEST"], "not TLS (plain HTTP)"),
        (
            ["UNSUPPORTED_PROTOCOL", "WRONG_VERSION_NUMBER", "PROTOCOL_VERSION", "TLSV1_ALERT_PROTOCOL_VERSION"],
            "TLS version other than 1.3"
        ),
        (["CERTIFICATE_EXPIRED"], "certificate expired"),
        (["UNKNOWN_CA", "TLSV1_ALERT_UNKNOWN_CA"], "the client does not trust this server's certificate (unknown CA)"),
        (["CERTIFICATE_VERIFY_FAILED"], "client certificate not issued by this deployment, or expired"),
        (["PEER_DID_NOT_RETURN_A_CERTIFICATE", "NO_CERTIFICATE"], "no client certificate"),
        (["NO_SHARED_CIPHER", "NO_SHARED_GROUP", "NO_COMMON_SIGNATURE_ALGORITHMS"], "no shared cipher or group"),
        (["BAD_CERTIFICATE", "CERTIFICATE_UNKNOWN", "DECODE_ERROR"], "bad certificate"),
    ]

    /// A short, fixed reason for `error`.
    static func reason(_ error: any Error) -> String {
        if let error = error as? HavenError { return error.message }
        if let error = error as? NIOSSLError {
            switch error {
            case .uncleanShutdown: return "closed during the handshake"
            case .handshakeFailed(let inner): return Self.reason(boringSSL: "\(inner)")
            default: return Self.reason(boringSSL: "\(error)")
            }
        }
        if error is BoringSSLError { return Self.reason(boringSSL: "\(error)") }
        if let error = error as? ChannelError {
            switch error {
            case .eof, .ioOnClosedChannel, .alreadyClosed, .outputClosed: return "closed during the handshake"
            default: return "connection error"
            }
        }
        if error is IOError { return "connection error" }
        return "protocol error"
    }

    /// Maps BoringSSL's text by its reason codes; anything else is a protocol error.
    static func reason(boringSSL text: String) -> String {
        let upper = text.uppercased()
        for (codes, reason) in Self.reasons where codes.contains(where: { upper.contains($0) }) {
            return reason
        }
        return "protocol error"
    }
}
