import Foundation
import HavenProtocol
import NIOCore
import NIOSSL

/// The PEM files a server's TLS needs: its certificate chain and key, and the
/// deployment CA that client certificates must chain to.
package struct TLSMaterial: Sendable {
    package var certificateChainPEM: String
    package var privateKeyPEM: String
    package var clientCAPEM: String

    package init(certificateChainPEM: String, privateKeyPEM: String, clientCAPEM: String) {
        self.certificateChainPEM = certificateChainPEM
        self.privateKeyPEM = privateKeyPEM
        self.clientCAPEM = clientCAPEM
    }

    /// Reads them from a data directory.
    package init(dataDirectory: DataDirectory) throws {
        func read(_ path: String) throws -> String {
            do {
                return try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw HavenError(code: .failedPrecondition, message: "cannot read \(path)")
            }
        }
        self.certificateChainPEM = try read(dataDirectory.serverCertificateFile)
        self.privateKeyPEM = try read(dataDirectory.serverKeyFile)
        self.clientCAPEM = try read(dataDirectory.caCertificateFile)
    }

    /// TLS 1.3 only, ALPN `haven/1`; a client certificate, when presented,
    /// must chain to the deployment's root CA (the handshake fails otherwise).
    /// A connection without one may only enrol (``Principal/enrolling(until:)``).
    func serverContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeServerConfigurationWithMTLS(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(self.certificateChainPEM.utf8)).map {
                .certificate($0)
            },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(self.privateKeyPEM.utf8), format: .pem)),
            trustRoots: .certificates(try NIOSSLCertificate.fromPEMBytes(Array(self.clientCAPEM.utf8)))
        )
        configuration.certificateVerification = .optionalVerification
        configuration.minimumTLSVersion = .tlsv13
        configuration.applicationProtocols = [HavenWire.alpnIdentifier]
        // Closing sends close_notify and then waits this long for the peer's
        // before closing TCP (NIOSSL's default is 5 s). TLS 1.3 does not require
        // the wait, and a peer that never reads would otherwise hold every
        // connection's close, and so havend's shutdown, for 5 s.
        configuration.shutdownTimeout = .milliseconds(250)
        return try NIOSSLContext(configuration: configuration)
    }
}
