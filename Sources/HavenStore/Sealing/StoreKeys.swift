import Crypto
import Foundation
import HavenProtocol
import Synchronization

/// A master key and its fingerprint (the first 8 bytes of its SHA-256, hex):
/// the fingerprint is stored beside every office key it wraps, so the store
/// always knows which master key a row needs.
package struct MasterKeyMaterial: Sendable {
    package let key: SymmetricKey
    package let fingerprint: String

    package init(key: SymmetricKey) {
        self.key = key
        self.fingerprint = key.withUnsafeBytes { bytes in
            SHA256.hash(data: Data(bytes)).prefix(8).map { String(format: "%02x", $0) }.joined()
        }
    }
}

/// The master keys a store may unwrap office keys with, and a cache of
/// unwrapped office keys.
///
/// Normally one master key. During a rotation two: the old one (what rows not
/// yet re-wrapped need) and the new one (what the rotation wraps with); the
/// old one is dropped once the rotation has committed and the new key file is
/// in place. Which master key *new* office keys are wrapped with is decided
/// by the database (`meta.master-key`), never by memory, so a transaction
/// that runs while a rotation commits cannot wrap with a key about to be
/// destroyed.
package final class StoreKeys: Sendable {
    private struct State {
        var masters: [String: SymmetricKey] = [:]
        var officeKeys: [OfficeKeyName: SymmetricKey] = [:]
    }

    /// What an unwrapped office key is cached under: its office, generation
    /// and master key, and the wrapped bytes too, so that a key unwrapped
    /// inside a write that was then rolled back (by a group commit, alone or
    /// with its transaction) is never taken for a later, different key of
    /// the same generation.
    struct OfficeKeyName: Hashable {
        var office: String
        var generation: Int64
        var master: String
        var wrapped: [UInt8]
    }

    private let state: Mutex<State>

    package init(_ masters: [MasterKeyMaterial]) {
        var state = State()
        for master in masters { state.masters[master.fingerprint] = master.key }
        self.state = Mutex(state)
    }

    /// Whether a master key is loaded (without one nothing sealed opens): part of readiness.
    package var hasMasterKey: Bool {
        self.state.withLock { !$0.masters.isEmpty }
    }

    /// Makes another master key available (the new key of a rotation).
    package func add(_ master: MasterKeyMaterial) {
        self.state.withLock { $0.masters[master.fingerprint] = master.key }
    }

    /// Forgets a master key (the old key, once a rotation has committed).
    package func remove(fingerprint: String) {
        self.state.withLock { state in
            state.masters[fingerprint] = nil
            state.officeKeys.removeAll()
        }
    }

    /// Fingerprints of the master keys held.
    package var fingerprints: Set<String> { self.state.withLock { Set($0.masters.keys) } }

    func master(_ fingerprint: String) -> SymmetricKey? {
        self.state.withLock { $0.masters[fingerprint] }
    }

    func cachedOfficeKey(_ name: OfficeKeyName) -> SymmetricKey? {
        self.state.withLock { $0.officeKeys[name] }
    }

    func cacheOfficeKey(_ name: OfficeKeyName, _ key: SymmetricKey) {
        self.state.withLock { $0.officeKeys[name] = key }
    }
}

/// AES-GCM boxes in Haven's stored format: one format byte, then nonce,
/// ciphertext and tag. What a box is bound to (its additional authenticated
/// data) says where it belongs; a box moved elsewhere does not open.
package enum SealBox {
    /// Format 1: a survivor identity under its office's key, bound to the
    /// survivor id only (before per-record keys; read, never written).
    package static let legacyFormat: UInt8 = 1
    /// Format 2: under a per-record key, bound to kind, id, office and version.
    package static let format: UInt8 = 2

    package static func seal(_ plaintext: [UInt8], key: SymmetricKey, context: String) throws -> [UInt8] {
        let box = try AES.GCM.seal(
            plaintext,
            using: key,
            nonce: NonceSource.next(),
            authenticating: Data(context.utf8)
        )
        return [Self.format] + Array(box.combined!)
    }

    package static func open(_ sealed: [UInt8], key: SymmetricKey, context: String) throws -> [UInt8] {
        let box = try AES.GCM.SealedBox(combined: sealed.dropFirst())
        return Array(try AES.GCM.open(box, using: key, authenticating: Data(context.utf8)))
    }

    package static func officeKeyContext(_ office: String, generation: Int64) -> String {
        generation <= 1 ? "haven.v1 office key \(office)" : "haven.v1 office key \(office) generation \(generation)"
    }

    package static func recordKeyContext(_ kind: String, _ id: String, _ office: String, generation: Int64) -> String {
        "haven.v1 record key \(kind) \(id) \(office) generation \(generation)"
    }

    package static func identityContext(_ survivorID: String, _ office: String, version: UInt64) -> String {
        "haven.v1 identity \(survivorID) \(office) version \(version)"
    }

    package static func legacyIdentityContext(_ survivorID: String) -> String { "haven.v1 identity \(survivorID)" }

    package static func fieldsContext(_ kind: String, _ id: String, _ office: String, version: UInt64) -> String {
        "haven.v1 fields \(kind) \(id) \(office) version \(version)"
    }
}
