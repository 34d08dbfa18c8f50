import Crypto
import Foundation
import HavenProtocol
import HavenStore
import SwiftASN1
import X509

/// The certificate authority a running server issues with, and the root its
/// peers trust.
package struct CredentialAuthority: Sendable {
    /// Signs users' and partners' certificates (the issuing CA, or the root
    /// of a deployment created before the split).
    package let issuing: CertificateAuthority
    /// The deployment's root certificate (PEM), the only trust anchor.
    package let rootCertificatePEM: String

    package init(issuing: CertificateAuthority, rootCertificatePEM: String) {
        self.issuing = issuing
        self.rootCertificatePEM = rootCertificatePEM
    }

    /// A new root and issuing CA held in memory (in-process tests).
    package static func ephemeral(now: Date = Date()) throws -> CredentialAuthority {
        let root = try CertificateAuthority.createRoot(name: "Haven test root CA", validity: 86400 * 30, now: now)
        return CredentialAuthority(
            issuing: try root.createIssuing(name: "Haven test issuing CA", validity: 86400 * 30, now: now),
            rootCertificatePEM: try root.certificatePEM
        )
    }

    /// Issues a certificate for the key of a signing request, and the record
    /// that binds it to `accountID`.
    ///
    /// - Throws: INVALID_ARGUMENT for a request that is not DER, not for a
    ///   P-256 key, or not signed by that key.
    package func issue(
        csrDER: [UInt8],
        accountID: String,
        validityDays: Int,
        issuedBy: String,
        now: Date
    ) throws -> (Haven_V1_IssuedCredential, StoredCredential) {
        let request: CertificateSigningRequest
        do {
            request = try CertificateSigningRequest(derEncoded: csrDER)
        } catch {
            throw HavenError.invalidField("csr_der", "is not a DER PKCS#10 certificate signing request")
        }
        guard P256.Signing.PublicKey(request.publicKey) != nil else {
            throw HavenError.invalidField("csr_der", "must be for a P-256 (secp256r1) key")
        }
        guard request.publicKey.isValidSignature(request.signature, for: request) else {
            throw HavenError.invalidField("csr_der", "is not signed by the key it names")
        }
        let certificate = try self.issuing.issueClientCertificate(
            for: request.publicKey,
            accountID: accountID,
            validity: TimeInterval(validityDays) * 86400,
            now: now
        )
        let stored = StoredCredential(certificate, accountID: accountID, issuedBy: issuedBy, now: now)
        var issued = Haven_V1_IssuedCredential()
        issued.certificateChainPem = try self.issuing.chainPEM(certificate)
        issued.caCertificatePem = self.rootCertificatePEM
        issued.credential = stored.wire(now: Int64(now.timeIntervalSince1970 * 1000))
        return (issued, stored)
    }
}

extension StoredCredential {
    /// The record binding `certificate` to `accountID`.
    package init(_ certificate: Certificate, accountID: String, issuedBy: String, now: Date) {
        self.init(
            serial: certificate.serialHex,
            accountID: accountID,
            publicKeySHA256: certificate.publicKeySHA256,
            issuedAtUnixMs: Int64((now.timeIntervalSince1970 * 1000).rounded()),
            notValidAfterUnixMs: Int64((certificate.notValidAfter.timeIntervalSince1970 * 1000).rounded()),
            issuedBy: issuedBy
        )
    }

    /// As the protocol shows it at `now`.
    package func wire(now: Int64) -> Haven_V1_Credential {
        var credential = Haven_V1_Credential()
        credential.serial = self.serial
        credential.accountID = self.accountID
        credential.publicKeySha256 = self.publicKeySHA256
        credential.issuedAtUnixMs = self.issuedAtUnixMs
        credential.notValidAfterUnixMs = self.notValidAfterUnixMs
        credential.issuedBy = self.issuedBy
        credential.revokedAtUnixMs = self.revokedAtUnixMs
        credential.revokedBy = self.revokedBy
        credential.revokedReason = self.revokedReason
        credential.state =
            self.isRevoked ? .revoked : (self.notValidAfterUnixMs <= now ? .expired : .active)
        return credential
    }
}

/// One-time enrolment codes: 26 characters of Crockford base32 (130 random
/// bits), shown once, stored as their SHA-256.
package enum EnrollmentCode {
    static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ")

    /// A new random code, grouped for reading aloud (`ABCDE-FGHJK-…`).
    package static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let characters = (0..<26).map { _ in Self.alphabet[Int(generator.next(upperBound: UInt8(32)))] }
        return stride(from: 0, to: 26, by: 5).map { String(characters[$0..<min($0 + 5, 26)]) }
            .joined(separator: "-")
    }

    /// The code as stored: upper case, dashes and spaces removed, and the
    /// letters people confuse with digits read as those digits (I, L → 1; O → 0).
    package static func normalized(_ code: String) -> String {
        String(
            code.uppercased().compactMap { character -> Character? in
                switch character {
                case "-", " ": nil
                case "I", "L": "1"
                case "O": "0"
                default: character
                }
            }
        )
    }

    /// What the store keeps of a code.
    package static func hash(_ code: String) -> [UInt8] {
        Array(SHA256.hash(data: Array(("haven.v1 enrolment " + Self.normalized(code)).utf8)))
    }
}
