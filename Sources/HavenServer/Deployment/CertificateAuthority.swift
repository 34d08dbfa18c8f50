import Crypto
import Foundation
import HavenProtocol
import SwiftASN1
import X509

/// A certificate and its private key, as PEM.
package struct IssuedCredential: Sendable {
    /// The certificate followed by the issuing CA's (what a peer presents), PEM.
    package var certificatePEM: String
    /// Its private key, PKCS#8 PEM.
    package var privateKeyPEM: String
    /// When it expires.
    package var notValidAfter: Date
    /// The certificate itself.
    package var certificate: Certificate
}

/// A certificate authority of a deployment (P-256).
///
/// A deployment has two: the **root**, its only trust anchor (`tls/ca.pem`),
/// whose key signs nothing but issuing CAs and can stay offline; and the
/// **issuing CA** (`tls/issuing.pem`), signed by the root, whose key the
/// server holds to sign users' and partners' certificates at enrolment and
/// renewal, and server certificates. Deployments created before the split
/// have only the root, which then issues too.
package struct CertificateAuthority: Sendable {
    package let certificate: Certificate
    private let privateKey: P256.Signing.PrivateKey
    /// The CA certificates between this one and the root, this one first, the
    /// root excluded (empty for the root itself).
    package let intermediates: [Certificate]

    /// Creates a new self-signed root CA, which may sign one level of issuing CAs.
    ///
    /// - Parameters:
    ///   - name: Its common name, e.g. "Haven development root CA (haven-data)".
    ///   - validity: How long it is valid.
    ///   - now: The current time.
    package static func createRoot(
        name: String,
        validity: TimeInterval,
        now: Date = Date()
    ) throws
        -> CertificateAuthority
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
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 1))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: .init(key.publicKey))
            },
            issuerPrivateKey: .init(key)
        )
        return CertificateAuthority(certificate: certificate, privateKey: key, intermediates: [])
    }

    /// Creates an issuing CA under this root (which must be a root).
    package func createIssuing(
        name: String,
        validity: TimeInterval,
        now: Date = Date()
    ) throws
        -> CertificateAuthority
    {
        let key = P256.Signing.PrivateKey()
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-300),
            notValidAfter: min(now.addingTimeInterval(validity), self.certificate.notValidAfter),
            issuer: self.certificate.subject,
            subject: try DistinguishedName {
                OrganizationName("Haven")
                CommonName(name)
            },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: .init(key.publicKey))
                AuthorityKeyIdentifier(keyIdentifier: self.keyIdentifier)
            },
            issuerPrivateKey: .init(self.privateKey)
        )
        return CertificateAuthority(certificate: certificate, privateKey: key, intermediates: [certificate])
    }

    private init(certificate: Certificate, privateKey: P256.Signing.PrivateKey, intermediates: [Certificate]) {
        self.certificate = certificate
        self.privateKey = privateKey
        self.intermediates = intermediates
    }

    /// Loads a CA from its PEM files.
    ///
    /// - Parameter intermediate: Whether it is an issuing CA (signed by the
    ///   root) rather than the root itself.
    package init(certificatePEM: String, privateKeyPEM: String, intermediate: Bool = false) throws {
        self.certificate = try Certificate(pemEncoded: certificatePEM)
        self.privateKey = try P256.Signing.PrivateKey(pemRepresentation: privateKeyPEM)
        self.intermediates = intermediate ? [self.certificate] : []
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
        let key = P256.Signing.PrivateKey()
        return try self.issued(
            key: key,
            certificate: try self.sign(
                publicKey: .init(key.publicKey),
                commonName: hostnames.first ?? "haven-server",
                validity: validity,
                now: now
            ) {
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(names)
            }
        )
    }

    /// Issues a client certificate, with a new key, whose common name is the
    /// account id (for reading only: accounts are bound to the certificate's
    /// serial and key). For development deployments and tests; users and
    /// partners enrol with keys of their own (``issueClientCertificate(for:accountID:validity:now:)``).
    package func issueClientCertificate(
        accountID: String,
        validity: TimeInterval,
        now: Date = Date()
    ) throws
        -> IssuedCredential
    {
        let key = P256.Signing.PrivateKey()
        return try self.issued(
            key: key,
            certificate: try self.issueClientCertificate(
                for: .init(key.publicKey),
                accountID: accountID,
                validity: validity,
                now: now
            )
        )
    }

    /// Issues a client certificate for a public key someone else holds the private key of.
    package func issueClientCertificate(
        for publicKey: Certificate.PublicKey,
        accountID: String,
        validity: TimeInterval,
        now: Date = Date()
    ) throws -> Certificate {
        try self.sign(publicKey: publicKey, commonName: accountID, validity: validity, now: now) {
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage([.clientAuth])
        }
    }

    /// The certificate followed by the intermediates, PEM: what a peer presents.
    package func chainPEM(_ certificate: Certificate) throws -> String {
        try ([certificate] + self.intermediates).map { try $0.serializeAsPEM().pemString }.joined(separator: "\n")
            + "\n"
    }

    private func issued(key: P256.Signing.PrivateKey, certificate: Certificate) throws -> IssuedCredential {
        IssuedCredential(
            certificatePEM: try self.chainPEM(certificate),
            privateKeyPEM: key.pemRepresentation,
            notValidAfter: certificate.notValidAfter,
            certificate: certificate
        )
    }

    private func sign(
        publicKey: Certificate.PublicKey,
        commonName: String,
        validity: TimeInterval,
        now: Date,
        @ExtensionsBuilder extensions: () throws -> Result<Certificate.Extensions, any Error>
    ) throws -> Certificate {
        let notValidAfter = min(now.addingTimeInterval(validity), self.certificate.notValidAfter)
        var all = try Certificate.Extensions(builder: extensions)
        try all.append(Certificate.Extension(BasicConstraints.notCertificateAuthority, critical: true))
        try all.append(
            Certificate.Extension(AuthorityKeyIdentifier(keyIdentifier: self.keyIdentifier), critical: false)
        )
        return try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: publicKey,
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

extension Certificate {
    /// The serial number, lowercase hex: how Haven names a certificate.
    package var serialHex: String { self.serialNumber.bytes.map { String(format: "%02x", $0) }.joined() }

    /// SHA-256 of the certificate's DER, lowercase hex (what `openssl x509
    /// -fingerprint -sha256` prints, without colons).
    package var fingerprint: String {
        get throws {
            var serializer = DER.Serializer()
            try serializer.serialize(self)
            return SHA256.hash(data: serializer.serializedBytes).map { String(format: "%02x", $0) }.joined()
        }
    }

    /// SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex.
    package var publicKeySHA256: String {
        SHA256.hash(data: Array(self.publicKey.subjectPublicKeyInfoBytes)).map { String(format: "%02x", $0) }.joined()
    }
}

extension Certificate {
    /// The first certificate of a PEM chain (a leaf followed by its issuers).
    package init(firstPEMIn text: String) throws {
        let documents = try PEMDocument.parseMultiple(pemString: text)
        guard let first = documents.first else { throw HavenError(code: .invalidArgument, message: "no certificate") }
        try self.init(pemDocument: first)
    }
}
