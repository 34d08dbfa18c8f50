import Crypto
import Foundation
import HavenProtocol
import NIOCore
import NIOPosix
import SwiftASN1
import X509

/// Enrolment: getting credentials without anyone else ever holding your key.
///
/// Your administrator creates your account and gives you an enrolment code
/// (one-time, valid for a day by default) and the deployment's `ca.pem`.
/// ``enroll(server:caPEM:code:serverHostname:)`` makes a P-256 key on this machine, sends a
/// certificate signing request with the code over TLS (verifying the server
/// against `ca.pem`), and returns the bundle to keep:
///
/// ```swift
/// let bundle = try await HavenEnrollment.enroll(
///     server: "haven.example.org:7443",
///     caPEM: try String(contentsOfFile: "ca.pem", encoding: .utf8),
///     code: "7K3QF-..."
/// )
/// try bundle.write(to: URL(fileURLWithPath: "credentials/asha-home"))
/// ```
///
/// Renew before the certificate expires with ``HavenClient/renewCredentials()``
/// (``HavenClient`` does it by itself in the last third of the certificate's life).
public enum HavenEnrollment {
    /// Enrols this machine.
    ///
    /// - Parameters:
    ///   - server: `host:port` (an IPv6 address in brackets).
    ///   - caPEM: The deployment's root CA certificate.
    ///   - code: The enrolment code.
    ///   - serverHostname: The name the server's certificate must be valid for, when not the host dialled.
    /// - Returns: The new credentials, not yet written anywhere.
    /// - Throws: `HavenError`: UNAUTHENTICATED for a code that is unknown,
    ///   spent or expired; UNAVAILABLE naming the address and cause when the
    ///   server cannot be reached.
    public static func enroll(
        server: String,
        caPEM: String,
        code: String,
        serverHostname: String? = nil
    ) async throws -> HavenCredentialBundle {
        let (host, port) = try HavenServerAddress.parse(server)
        let key = P256.Signing.PrivateKey()
        var request = Haven_V1_EnrollRequest()
        request.code = code
        request.csrDer = Data(try Self.signingRequest(for: key))
        var configuration = HavenClientConfiguration(
            host: host,
            port: port,
            credentials: try HavenCredentials(enrollingWith: caPEM)
        )
        configuration.serverHostname = serverHostname
        configuration.renewsCredentials = false
        let issued = try await withHavenClient(configuration) { client in
            try await client.unary(MethodCatalog.EnrollmentService.enroll, request)
        }
        return HavenCredentialBundle(
            caPEM: issued.caCertificatePem,
            certificatePEM: issued.certificateChainPem,
            privateKeyPEM: key.pemRepresentation,
            server: server,
            credential: issued.credential
        )
    }

    /// A PKCS#10 request (DER) for `key`, signed with it.
    static func signingRequest(for key: P256.Signing.PrivateKey) throws -> [UInt8] {
        let request = try CertificateSigningRequest(
            version: .v1,
            subject: try DistinguishedName { CommonName("haven-client") },
            privateKey: .init(key),
            attributes: .init(),
            signatureAlgorithm: .ecdsaWithSHA256
        )
        var serializer = DER.Serializer()
        try serializer.serialize(request)
        return serializer.serializedBytes
    }
}

/// Credentials just issued: write them to a directory of their own.
public struct HavenCredentialBundle: Sendable {
    /// The deployment's root CA certificate.
    public var caPEM: String
    /// The client certificate followed by the issuing CA's.
    public var certificatePEM: String
    /// The private key, made on this machine. Never send it anywhere.
    public var privateKeyPEM: String
    /// The server the bundle is for, `host:port`.
    public var server: String
    /// The certificate as the server recorded it (serial, expiry).
    public var credential: Haven_V1_Credential

    /// Writes `ca.pem`, `client.pem`, `client-key.pem` and `server` into
    /// `directory` (created, readable by this user only). Existing files are
    /// replaced one by one, each atomically: the key last but one and the
    /// certificate last, so that a crash leaves the old pair or the new.
    ///
    /// - Throws: `HavenError` INVALID_ARGUMENT (source client) naming the
    ///   path that cannot be written.
    public func write(to directory: URL) throws {
        let files = FileManager.default
        do {
            try files.createDirectory(
                at: directory,
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700]
            )
        } catch {
            throw HavenError(code: .invalidArgument, message: "cannot create \(directory.path)", source: .client)
        }
        // A renewal replaces a pair: write both under new names first, then rename.
        let staged: [(String, String)] = [
            (HavenCredentials.File.ca, self.caPEM),
            (HavenCredentials.File.server, self.server + "\n"),
            (HavenCredentials.File.privateKey, self.privateKeyPEM),
            (HavenCredentials.File.certificate, self.certificatePEM),
        ]
        for (name, text) in staged {
            let path = directory.appendingPathComponent(name).path
            let temporary = path + ".new"
            guard files.createFile(atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
            else {
                throw HavenError(code: .invalidArgument, message: "cannot write \(temporary)", source: .client)
            }
        }
        for (name, _) in staged {
            let path = directory.appendingPathComponent(name).path
            guard rename(path + ".new", path) == 0 else {
                throw HavenError(code: .invalidArgument, message: "cannot replace \(path)", source: .client)
            }
        }
    }

    /// The bundle as credentials to connect with.
    public func credentials(bundle: URL? = nil) throws -> HavenCredentials {
        try HavenCredentials(
            caPEM: self.caPEM,
            certificatePEM: self.certificatePEM,
            privateKeyPEM: self.privateKeyPEM,
            bundle: bundle,
            server: self.server
        )
    }
}

/// Server addresses as people write them.
public enum HavenServerAddress {
    /// Splits `host:port`, `[v6]:port` or a bare host (port 7443).
    ///
    /// - Throws: `HavenError` INVALID_ARGUMENT (source client) saying what is wrong.
    public static func parse(_ text: String) throws -> (host: String, port: Int) {
        let invalid = HavenError(
            code: .invalidArgument,
            message:
                "server address \"\(text.prefix(100))\" is not host:port (an IPv6 address in brackets, [::1]:7443)",
            source: .client
        )
        var host = text
        var port = 7443
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw invalid }
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let value = Int(rest.dropFirst()) else { throw invalid }
                port = value
            }
        } else if let colon = text.lastIndex(of: ":") {
            guard text.firstIndex(of: ":") == colon else { throw invalid }  // a bare IPv6 address needs brackets
            host = String(text[..<colon])
            guard let value = Int(text[text.index(after: colon)...]) else { throw invalid }
            port = value
        }
        guard !host.isEmpty, (1...65535).contains(port) else { throw invalid }
        return (host, port)
    }
}
