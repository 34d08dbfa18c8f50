import Crypto
import Foundation
import HavenProtocol
import HavenStore
import SwiftProtobuf

/// Seals and opens survivor identities.
///
/// Each office has a random 256-bit data key, stored in the database only
/// wrapped (AES-GCM) under the master key. An identity is serialized and
/// sealed with AES-GCM under its office's data key, authenticated with the
/// survivor's id, so a sealed identity moved to another record does not open.
/// Sealed format: one version byte (1), then nonce, ciphertext and tag.
package struct IdentityVault: Sendable {
    private let masterKey: MasterKey

    package init(masterKey: MasterKey) {
        self.masterKey = masterKey
    }

    private static let formatVersion: UInt8 = 1

    /// Seals an identity for storage, creating the office's data key if needed.
    package func seal(
        _ identity: Haven_V1_SurvivorIdentity,
        survivorID: String,
        officeCode: String,
        in tx: any StoreWriter
    )
        throws -> [UInt8]
    {
        let officeKey = try self.officeKey(officeCode, creatingIn: tx)
        let plaintext: [UInt8]
        do {
            plaintext = try identity.serializedBytes()
        } catch {
            throw HavenError(code: .internal, message: "could not serialize an identity")
        }
        let box = try AES.GCM.seal(plaintext, using: officeKey, authenticating: Self.identityContext(survivorID))
        return [Self.formatVersion] + Array(box.combined!)
    }

    /// Opens a sealed identity.
    package func open(
        _ sealed: [UInt8],
        survivorID: String,
        officeCode: String,
        in tx: any StoreReader
    ) throws
        -> Haven_V1_SurvivorIdentity
    {
        guard let wrapped = try tx.wrappedOfficeKey(officeCode: officeCode) else {
            throw HavenError(code: .dataLoss, message: "office \(officeCode) has no data key")
        }
        let officeKey = try self.unwrap(wrapped, officeCode: officeCode)
        guard sealed.first == Self.formatVersion else {
            throw HavenError(code: .dataLoss, message: "a sealed identity has an unknown format")
        }
        do {
            let box = try AES.GCM.SealedBox(combined: sealed.dropFirst())
            let plaintext = try AES.GCM.open(box, using: officeKey, authenticating: Self.identityContext(survivorID))
            return try Haven_V1_SurvivorIdentity(serializedBytes: plaintext)
        } catch {
            throw HavenError(code: .dataLoss, message: "a sealed identity does not open with its office's key")
        }
    }

    private func officeKey(_ officeCode: String, creatingIn tx: any StoreWriter) throws -> SymmetricKey {
        if let wrapped = try tx.wrappedOfficeKey(officeCode: officeCode) {
            return try self.unwrap(wrapped, officeCode: officeCode)
        }
        let key = SymmetricKey(size: .bits256)
        let box = try key.withUnsafeBytes { bytes in
            try AES.GCM.seal(Array(bytes), using: self.masterKey.key, authenticating: Self.officeKeyContext(officeCode))
        }
        try tx.saveWrappedOfficeKey(officeCode: officeCode, wrappedKey: [Self.formatVersion] + Array(box.combined!))
        return key
    }

    private func unwrap(_ wrapped: [UInt8], officeCode: String) throws -> SymmetricKey {
        guard wrapped.first == Self.formatVersion else {
            throw HavenError(code: .dataLoss, message: "office \(officeCode)'s data key has an unknown format")
        }
        do {
            let box = try AES.GCM.SealedBox(combined: wrapped.dropFirst())
            let bytes = try AES.GCM.open(
                box,
                using: self.masterKey.key,
                authenticating: Self.officeKeyContext(officeCode)
            )
            return SymmetricKey(data: bytes)
        } catch {
            throw HavenError(
                code: .dataLoss,
                message: "office \(officeCode)'s data key does not open with this master key (wrong master.key?)"
            )
        }
    }

    private static func identityContext(_ survivorID: String) -> Data { Data("haven.v1 identity \(survivorID)".utf8) }
    private static func officeKeyContext(_ officeCode: String) -> Data {
        Data("haven.v1 office key \(officeCode)".utf8)
    }
}
