import Foundation
import HavenProtocol
import NIOSSL

/// The files `haven-admin` hands a user or partner organisation: the
/// deployment's CA certificate, a client certificate and its private key.
///
/// The CA is the only certificate the client trusts: the server must present
/// a certificate it issued, for the host name dialled.
///
/// ```swift
/// let credentials = try HavenCredentials(bundle: URL(fileURLWithPath: "credentials/asha-home"))
/// ```
public struct HavenCredentials: Sendable {
    let trustRoots: [NIOSSLCertificate]
    let certificateChain: [NIOSSLCertificate]
    let privateKey: NIOSSLPrivateKey

    /// Credentials from PEM text.
    ///
    /// - Parameters:
    ///   - caPEM: The deployment CA's certificate (`ca.pem`).
    ///   - certificatePEM: Your client certificate (`client.pem`).
    ///   - privateKeyPEM: Its private key (`client-key.pem`).
    /// - Throws: ``HavenError`` INVALID_ARGUMENT naming the part that is not valid PEM.
    public init(caPEM: String, certificatePEM: String, privateKeyPEM: String) throws {
        do {
            self.trustRoots = try NIOSSLCertificate.fromPEMBytes(Array(caPEM.utf8))
        } catch {
            throw HavenError(code: .invalidArgument, message: "the CA certificate is not valid PEM", source: .client)
        }
        do {
            self.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(certificatePEM.utf8))
        } catch {
            throw HavenError(
                code: .invalidArgument,
                message: "the client certificate is not valid PEM",
                source: .client
            )
        }
        do {
            self.privateKey = try NIOSSLPrivateKey(bytes: Array(privateKeyPEM.utf8), format: .pem)
        } catch {
            throw HavenError(code: .invalidArgument, message: "the private key is not valid PEM", source: .client)
        }
        guard !self.trustRoots.isEmpty, !self.certificateChain.isEmpty else {
            throw HavenError(
                code: .invalidArgument,
                message: "the CA or client certificate file holds no certificate",
                source: .client
            )
        }
    }

    /// Loads a credentials bundle directory: `ca.pem`, `client.pem`, `client-key.pem`.
    ///
    /// - Parameter bundle: The directory `haven-admin` created.
    /// - Throws: ``HavenError`` INVALID_ARGUMENT naming a missing or invalid file.
    public init(bundle: URL) throws {
        func read(_ name: String) throws -> String {
            let url = bundle.appendingPathComponent(name)
            guard let text = try? String(contentsOf: url, encoding: .utf8) else {
                throw HavenError(code: .invalidArgument, message: "cannot read \(url.path)", source: .client)
            }
            return text
        }
        try self.init(
            caPEM: try read("ca.pem"),
            certificatePEM: try read("client.pem"),
            privateKeyPEM: try read("client-key.pem")
        )
    }
}
