import Crypto
import Foundation
import HavenProtocol
import SwiftASN1
import X509

/// A certificate and its private key, as PEM.
package struct IssuedCredential: Sendable {
    /// The certificate, PEM.
    package var certificatePEM: String
    /// Its private key, PKCS#8 PEM.
    package var privateKeyPEM: String
    /// When it expires.
    package var notValidAfter: Date
}

/// A deployment's own certificate authority (P-256): the only trust anchor of
/// its servers and clients.
package struct CertificateAuthority: Sendable {
    package let certificate: Certificate
    private let privateKey: P256.Signing.PrivateKey

    /// Creates a new self-signed CA.
    ///
    /// - Parameters:
    ///   - name: Its common name, e.g. "Haven development CA (haven-data)".
    ///   - validity: How long it is valid.
    ///   - now: The current time.
    package static func create(name: String, validity: TimeInterval, now: Date = Date()) throws -> CertificateAuthority
    {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName {
            OrganizationName("Haven")
            CommonName(name)
        }
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-300),
            notValidAfter: now.addingTimeInterval(validity),
            issuer: subject,
            subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: .init(key.publicKey))
            },
            issuerPrivateKey: .init(key)
        )
        return CertificateAuthority(certificate: certificate, privateKey: key)
    }

    private init(certificate: Certificate, privateKey: P256.Signing.PrivateKey) {
        self.certificate = certificate
        self.privateKey = privateKey
    }

    /// Loads a CA from its PEM files.
    package init(certificatePEM: String, privateKeyPEM: String) throws {
        self.certificate = try Certificate(pemEncoded: certificatePEM)
        self.privateKey = try P256.Signing.PrivateKey(pemRepresentation: privateKeyPEM)
        guard self.certificate.publicKey == Certificate.PublicKey(self.privateKey.publicKey) else {
            throw HavenError(code: .failedPrecondition, message: "the CA private key does not match the CA certificate")
        }
    }

    /// The CA certificate, PEM.
    package var certificatePEM: String {
        get throws { try self.certificate.serializeAsPEM().pemString }
    }

    /// The CA private key, PKCS#8 PEM.
    package var privateKeyPEM: String { self.privateKey.pemRepresentation }

    /// Issues a server certificate for the given names and addresses.
    package func issueServerCertificate(
        hostnames: [String],
        ipAddresses: [[UInt8]],
        validity: TimeInterval,
        now: Date = Date()
    ) throws -> IssuedCredential {
        let names =
            hostnames.map { GeneralName.dnsName($0) }
            + ipAddresses.map { GeneralName.ipAddress(ASN1OctetString(contentBytes: $0[...])) }
        return try self.issue(
            commonName: hostnames.first ?? "haven-server",
            validity: validity,
            now: now
        ) {
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage([.serverAuth])
            SubjectAlternativeNames(names)
        }
    }

    /// Issues a client certificate whose common name is the account id.
    package func issueClientCertificate(
        accountID: String,
        validity: TimeInterval,
        now: Date = Date()
    ) throws
        -> IssuedCredential
    {
        try self.issue(commonName: accountID, validity: validity, now: now) {
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage([.clientAuth])
        }
    }

    private func issue(
        commonName: String,
        validity: TimeInterval,
        now: Date,
        @ExtensionsBuilder extensions: () throws -> Result<Certificate.Extensions, any Error>
    ) throws -> IssuedCredential {
        let key = P256.Signing.PrivateKey()
        let notValidAfter = min(now.addingTimeInterval(validity), self.certificate.notValidAfter)
        var all = try Certificate.Extensions(builder: extensions)
        try all.append(Certificate.Extension(BasicConstraints.notCertificateAuthority, critical: true))
        try all.append(
            Certificate.Extension(AuthorityKeyIdentifier(keyIdentifier: self.keyIdentifier), critical: false)
        )
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-300),
            notValidAfter: notValidAfter,
            issuer: self.certificate.subject,
            subject: try DistinguishedName {
                OrganizationName("Haven")
                CommonName(commonName)
            },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: all,
            issuerPrivateKey: .init(self.privateKey)
        )
        return IssuedCredential(
            certificatePEM: try certificate.serializeAsPEM().pemString,
            privateKeyPEM: key.pemRepresentation,
            notValidAfter: notValidAfter
        )
    }

    private var keyIdentifier: ArraySlice<UInt8>? {
        (try? self.certificate.extensions.subjectKeyIdentifier)??.keyIdentifier
    }
}

extension Certificate {
    /// The first common name of the subject, if any.
    package var subjectCommonName: String? {
        for rdn in self.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                return String(attribute.value) ?? attribute.value.description
            }
        }
        return nil
    }
}
