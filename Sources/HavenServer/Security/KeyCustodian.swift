import Crypto
import Foundation
import HavenProtocol
import HavenStore
import Synchronization

/// Keeps the master key file and the store's keys in step, and rotates them.
///
/// A rotation replaces `master.key` while the server runs:
///
/// 1. a new key is written to `master.key.next` (mode 0600, synced);
/// 2. one transaction re-wraps every office key under it (and, for the
///    offices named, replaces the office key and re-wraps its records' keys),
///    records the new key's fingerprint in the database, and runs what the
///    caller adds (an erasure, the audit entry);
/// 3. `master.key.next` is renamed over `master.key` and the directory synced;
///    the old key is forgotten.
///
/// A crash between 2 and 3 is finished at the next start (the database names
/// the key it needs; ``reconcile(_:)``); a crash before 2 leaves
/// `master.key.next` unused, and it is removed. The old master key exists
/// nowhere afterwards: a backup taken before the rotation cannot be opened
/// with the current keys — which is what makes an erasure reach backups.
package final class KeyCustodian: Sendable {
    /// The master key file; nil for a store whose key lives only in memory (tests).
    let masterKeyFile: String?
    package let keys: StoreKeys
    private let development: Bool
    private let rotating = Mutex(false)

    private init(masterKeyFile: String?, keys: StoreKeys, development: Bool) {
        self.masterKeyFile = masterKeyFile
        self.keys = keys
        self.development = development
    }

    /// Loads `master.key` (and `master.key.next`, left by an interrupted rotation).
    package static func load(masterKeyFile: String) throws -> KeyCustodian {
        let master = try MasterKey.load(from: masterKeyFile)
        var materials = [master.material]
        if FileManager.default.fileExists(atPath: masterKeyFile + ".next") {
            materials.append(try MasterKey.load(from: masterKeyFile + ".next").material)
        }
        return KeyCustodian(
            masterKeyFile: masterKeyFile,
            keys: StoreKeys(materials),
            development: master.isDevelopmentKey
        )
    }

    /// A custodian of a key that has no file (tests, in-process servers).
    package static func inMemory(_ key: SymmetricKey) -> KeyCustodian {
        KeyCustodian(masterKeyFile: nil, keys: StoreKeys([MasterKeyMaterial(key: key)]), development: true)
    }

    /// Finishes or discards an interrupted rotation, once the store is open:
    /// the database says which master key its office keys need.
    package func reconcile(_ store: any RecordStore) async throws {
        let needed = try await store.read { try $0.masterKeyFingerprint() }
        guard let file = self.masterKeyFile else { return }
        let next = file + ".next"
        if FileManager.default.fileExists(atPath: next) {
            let nextKey = try MasterKey.load(from: next).material
            if needed == nextKey.fingerprint {
                try Self.replace(file, with: next)
            } else {
                try FileManager.default.removeItem(atPath: next)
                self.keys.remove(fingerprint: nextKey.fingerprint)
            }
        }
        let current = try MasterKey.load(from: file).material
        if let needed, needed != current.fingerprint {
            throw HavenError(
                code: .failedPrecondition,
                message:
                    "the database's keys are wrapped by master key \(needed); \(file) holds \(current.fingerprint). Restore the master key that belongs to this database."
            )
        }
        for fingerprint in self.keys.fingerprints where fingerprint != current.fingerprint {
            self.keys.remove(fingerprint: fingerprint)
        }
    }

    /// Rotates the master key, and the keys of `offices`, running `body` in
    /// the same transaction (an erasure and its audit entry).
    ///
    /// - Throws: UNAVAILABLE when another rotation is under way; what `body`
    ///   throws (then nothing changed, and the old key stays).
    package func rotate<T: Sendable>(
        _ store: any RecordStore,
        offices: [String],
        _ body: @escaping @Sendable (any StoreWriter, KeyRotation, String) throws -> T
    ) async throws -> T {
        let acquired = self.rotating.withLock { busy -> Bool in
            if busy { return false }
            busy = true
            return true
        }
        guard acquired else {
            throw HavenError(code: .unavailable, message: "a key rotation is under way; retry shortly")
        }
        defer { self.rotating.withLock { $0 = false } }
        let newKey = MasterKey(key: SymmetricKey(size: .bits256), isDevelopmentKey: self.development)
        let material = newKey.material
        let old = self.keys.fingerprints
        if let file = self.masterKeyFile {
            try newKey.write(to: file + ".next")
        }
        let value: T
        do {
            value = try await store.write { tx in
                let rotation = try tx.rotateKeys(master: material, offices: offices)
                return try body(tx, rotation, material.fingerprint)
            }
        } catch {
            if let file = self.masterKeyFile { try? FileManager.default.removeItem(atPath: file + ".next") }
            self.keys.remove(fingerprint: material.fingerprint)
            throw error
        }
        if let file = self.masterKeyFile {
            try Self.replace(file, with: file + ".next")
        }
        for fingerprint in old where fingerprint != material.fingerprint {
            self.keys.remove(fingerprint: fingerprint)
        }
        return value
    }

    /// Renames `next` over `file` and syncs the directory, so the rename survives a power cut.
    private static func replace(_ file: String, with next: String) throws {
        guard rename(next, file) == 0 else {
            throw HavenError(code: .unavailable, message: "cannot replace \(file) (errno \(errno))")
        }
        let directory = (file as NSString).deletingLastPathComponent
        let descriptor = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY)
        guard descriptor >= 0 else { return }
        defer { close(descriptor) }
        _ = fsync(descriptor)
    }
}
