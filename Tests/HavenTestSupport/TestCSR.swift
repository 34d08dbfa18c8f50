import Crypto
import SwiftASN1
import X509

/// Certificate signing requests for keys made in the test, as an enrolling
/// machine makes them.
package enum TestCSR {
    /// A new P-256 key and a DER PKCS#10 request signed with it.
    package static func make() throws -> (key: P256.Signing.PrivateKey, der: [UInt8]) {
        let key = P256.Signing.PrivateKey()
        return (key, try self.der(for: key))
    }

    /// A DER PKCS#10 request for `key`, signed with `signer` (the key itself unless said).
    package static func der(
        for key: P256.Signing.PrivateKey,
        signedBy signer: P256.Signing.PrivateKey? = nil
    ) throws -> [UInt8] {
        var request = try CertificateSigningRequest(
            version: .v1,
            subject: try DistinguishedName { CommonName("haven-test-client") },
            privateKey: .init(key),
            attributes: .init(),
            signatureAlgorithm: .ecdsaWithSHA256
        )
        if let signer {
            // The same request, signed by another key: its signature must not verify.
            request = try CertificateSigningRequest(
                version: .v1,
                subject: request.subject,
                publicKey: request.publicKey,
                attributes: .init(),
                signatureAlgorithm: .ecdsaWithSHA256,
                signature: try Certificate.PrivateKey(signer).sign(
                    bytes: try CertificateSigningRequest(
                        version: .v1,
                        subject: request.subject,
                        privateKey: .init(key),
                        attributes: .init(),
                        signatureAlgorithm: .ecdsaWithSHA256
                    ).publicKey.subjectPublicKeyInfoBytes,
                    signatureAlgorithm: .ecdsaWithSHA256
                )
            )
        }
        var serializer = DER.Serializer()
        try serializer.serialize(request)
        return serializer.serializedBytes
    }
}
