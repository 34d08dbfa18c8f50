import Foundation
import HavenProtocol
import NIOSSL
import SwiftASN1
import X509

/// A credentials bundle: the deployment's root CA certificate, your client
/// certificate (and the issuing CA's, which the server needs to verify it)
/// and its private key, made on your machine at enrolment
/// (``HavenEnrollment``).
///
/// The CA is the only certificate the client trusts: the server must present
/// a certificate it issued, for the host name (or IP address) dialled.
///
/// ```swift
/// let credentials = try HavenCredentials(bundle: URL(fileURLWithPath: "credentials/asha-home"))
/// ```
public struct HavenCredentials: Sendable {
    let trustRoots: [NIOSSLCertificate]
    /// Empty only while enrolling.
    let certificateChain: [NIOSSLCertificate]
    let privateKey: NIOSSLPrivateKey?

    /// The directory the credentials were read from, if any: where renewal
    /// writes the new certificate and key.
    public let bundle: URL?
    /// The server the bundle was issued by (`host:port`, from its `server`
    /// file), if it names one.
    public let server: String?

    /// File names of a bundle.
    enum File {
        static let ca = "ca.pem"
        static let certificate = "client.pem"
        static let privateKey = "client-key.pem"
        static let server = "server"
    }

    /// Credentials from PEM text.
    ///
    /// - Parameters:
    ///   - caPEM: The deployment's root CA certificate (`ca.pem`).
    ///   - certificatePEM: Your client certificate, followed by the issuing
    ///     CA's (`client.pem`).
    ///   - privateKeyPEM: Its private key (`client-key.pem`).
    /// - Throws: `HavenError` INVALID_ARGUMENT naming the part that is not valid PEM.
    public init(caPEM: String, certificatePEM: String, privateKeyPEM: String) throws {
        try self.init(
            caPEM: caPEM,
            certificatePEM: certificatePEM,
            privateKeyPEM: privateKeyPEM,
            bundle: nil,
            server: nil
        )
    }

    init(caPEM: String, certificatePEM: String, privateKeyPEM: String, bundle: URL?, server: String?) throws {
        self.trustRoots = try Self.trustRoots(caPEM)
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
        guard !self.certificateChain.isEmpty else {
            throw HavenError(
                code: .invalidArgument,
                message: "the client certificate file holds no certificate",
                source: .client
            )
        }
        self.bundle = bundle
        self.server = server
    }

    /// Credentials for enrolling: the CA to trust, no client certificate.
    init(enrollingWith caPEM: String) throws {
        self.trustRoots = try Self.trustRoots(caPEM)
        self.certificateChain = []
        self.privateKey = nil
        self.bundle = nil
        self.server = nil
    }

    private static func trustRoots(_ caPEM: String) throws -> [NIOSSLCertificate] {
        let roots: [NIOSSLCertificate]
        do {
            roots = try NIOSSLCertificate.fromPEMBytes(Array(caPEM.utf8))
        } catch {
            throw HavenError(code: .invalidArgument, message: "the CA certificate is not valid PEM", source: .client)
        }
        guard !roots.isEmpty else {
            throw HavenError(code: .invalidArgument, message: "the CA file holds no certificate", source: .client)
        }
        return roots
    }

    /// Loads a credentials bundle directory: `ca.pem`, `client.pem`,
    /// `client-key.pem`, and `server` (the address, written at enrolment) if present.
    ///
    /// - Parameter bundle: The directory `haven-admin enroll` (or ``HavenEnrollment``) wrote.
    /// - Throws: `HavenError` INVALID_ARGUMENT naming a missing or invalid file.
    public init(bundle: URL) throws {
        func read(_ name: String) throws -> String {
            let url = bundle.appendingPathComponent(name)
            guard let text = try? String(contentsOf: url, encoding: .utf8) else {
                throw HavenError(
                    code: .invalidArgument,
                    message: "cannot read \(url.path) (is \(bundle.path) a credentials bundle?)",
                    source: .client
                )
            }
            return text
        }
        let server = (try? String(contentsOf: bundle.appendingPathComponent(File.server), encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try self.init(
            caPEM: try read(File.ca),
            certificatePEM: try read(File.certificate),
            privateKeyPEM: try read(File.privateKey),
            bundle: bundle,
            server: server?.isEmpty == false ? server : nil
        )
    }

    /// When the client certificate became valid (nil while enrolling).
    public var notValidBefore: Date? {
        self.certificateChain.first.map { Date(timeIntervalSince1970: TimeInterval($0.notValidBefore)) }
    }

    /// When the client certificate expires (nil while enrolling).
    public var notValidAfter: Date? {
        self.certificateChain.first.map { Date(timeIntervalSince1970: TimeInterval($0.notValidAfter)) }
    }

    /// The client certificate's serial, lowercase hex: how the server and
    /// `haven-admin accounts show` name it.
    public var serial: String? {
        guard let der = try? self.certificateChain.first?.toDERBytes(),
            let certificate = try? Certificate(derEncoded: der)
        else { return nil }
        return certificate.serialNumber.bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// Whether the certificate is in the last third of its lifetime at `now`:
    /// time to renew (``HavenClient`` does so by itself when
    /// ``HavenClientConfiguration/renewsCredentials`` is set).
    public func isDueForRenewal(at now: Date = Date()) -> Bool {
        guard let start = self.notValidBefore, let end = self.notValidAfter else { return false }
        return now >= end.addingTimeInterval(-end.timeIntervalSince(start) / 3)
    }
}
