import Crypto
import Foundation
import HavenProtocol
import SwiftProtobuf

/// The key hierarchy, as both stores keep it: master key (a file, outside the
/// database) → one key per office (`officeKey`, wrapped by the master key) →
/// one key per record that has anything sealed (`recordKey`, wrapped by its
/// office's key) → the record's sealed identity and sealed fields. Erasing a
/// record destroys its key; rotating re-wraps a level under a new key.
extension SQLTransaction {
    private static let masterKeyMeta = "master-key"

    func masterKeyFingerprint() throws -> String? {
        try self.sql.value(String.self, "SELECT value FROM meta WHERE name = ?", [Self.masterKeyMeta])
    }

    private func setMasterKeyFingerprint(_ fingerprint: String) throws {
        try self.sql.execute(
            "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            [Self.masterKeyMeta, fingerprint]
        )
    }

    private var requiredKeys: StoreKeys {
        get throws {
            guard let keys = self.keys else {
                throw HavenError(code: .failedPrecondition, message: "this store was opened without the master key")
            }
            return keys
        }
    }

    /// The master key new office keys are wrapped with: the database's.
    private func currentMaster() throws -> MasterKeyMaterial {
        let keys = try self.requiredKeys
        let fingerprint: String
        if let stored = try self.masterKeyFingerprint() {
            fingerprint = stored
        } else {
            guard keys.fingerprints.count == 1, let only = keys.fingerprints.first else {
                throw HavenError(code: .failedPrecondition, message: "the database names no master key")
            }
            fingerprint = only
            try self.setMasterKeyFingerprint(only)
        }
        guard let key = keys.master(fingerprint) else {
            throw HavenError(
                code: .failedPrecondition,
                message: "the database's keys are wrapped by master key \(fingerprint), which this server does not hold"
            )
        }
        return MasterKeyMaterial(key: key)
    }

    private func unwrapOfficeKey(
        _ office: String,
        wrapped: [UInt8],
        generation: Int64,
        master: String
    ) throws
        -> SymmetricKey
    {
        let keys = try self.requiredKeys
        let cacheName = StoreKeys.OfficeKeyName(
            office: office,
            generation: generation,
            master: master,
            wrapped: wrapped
        )
        if let cached = keys.cachedOfficeKey(cacheName) { return cached }
        let candidates = master.isEmpty ? Array(keys.fingerprints) : [master]
        for fingerprint in candidates {
            guard let masterKey = keys.master(fingerprint) else { continue }
            if let bytes = try? SealBox.open(
                wrapped,
                key: masterKey,
                context: SealBox.officeKeyContext(office, generation: generation)
            ) {
                let key = SymmetricKey(data: bytes)
                keys.cacheOfficeKey(cacheName, key)
                return key
            }
        }
        throw HavenError(
            code: .dataLoss,
            message: "office \(office)'s key does not open with the master key (wrong master.key?)"
        )
    }

    /// An office's key and generation, created (wrapped by the current master key) if asked.
    func officeKey(_ office: String, create: Bool) throws -> (generation: Int64, key: SymmetricKey)? {
        if let row = try self.sql.row(
            "SELECT wrappedKey, generation, masterKey FROM officeKey WHERE officeCode = ?",
            [office]
        ) {
            let generation: Int64 = try row["generation"]
            let key = try self.unwrapOfficeKey(
                office,
                wrapped: Array(try row["wrappedKey"] as Data),
                generation: generation,
                master: try row["masterKey"]
            )
            return (generation, key)
        }
        guard create else { return nil }
        let master = try self.currentMaster()
        let key = SymmetricKey(size: .bits256)
        let wrapped = try key.withUnsafeBytes { bytes in
            try SealBox.seal(Array(bytes), key: master.key, context: SealBox.officeKeyContext(office, generation: 1))
        }
        try self.sql.execute(
            "INSERT INTO officeKey (officeCode, wrappedKey, generation, masterKey) VALUES (?, ?, 1, ?)",
            [office, Data(wrapped), master.fingerprint]
        )
        return (1, key)
    }

    /// A record's own key, created (wrapped by its office's key) if asked.
    func recordKey(kind: String, id: String, office: String, create: Bool) throws -> SymmetricKey? {
        let name = "\(kind)/\(id)"
        if let cached = self.journal.recordKeys[name] ?? self.group?.recordKeys[name] { return cached }
        let key = try self.fetchRecordKey(kind: kind, id: id, office: office, create: create)
        if let key {
            self.journal.recordKeys[name] = key
            self.group?.recordKeys[name] = key
        }
        return key
    }

    private func fetchRecordKey(kind: String, id: String, office: String, create: Bool) throws -> SymmetricKey? {
        // The record's key with its office's, in one statement (a round trip to PostgreSQL).
        if let row = try self.sql.row(
            """
            SELECT r.officeCode, r.generation, r.wrappedKey, o.wrappedKey, o.generation, o.masterKey
            FROM recordKey r LEFT JOIN officeKey o ON o.officeCode = r.officeCode
            WHERE r.kind = ? AND r.id = ?
            """,
            [kind, id]
        ) {
            let keyOffice: String = try row[0]
            let generation: Int64 = try row[1]
            let officeWrapped: Data? = try row[3]
            let officeGeneration: Int64? = try row[4]
            guard let officeWrapped, let officeGeneration, officeGeneration == generation else {
                throw HavenError(code: .dataLoss, message: "the key of \(kind) \(id) has no office key to open it")
            }
            let officeKey = try self.unwrapOfficeKey(
                keyOffice,
                wrapped: Array(officeWrapped),
                generation: officeGeneration,
                master: try row[5]
            )
            do {
                return SymmetricKey(
                    data: try SealBox.open(
                        Array(try row[2] as Data),
                        key: officeKey,
                        context: SealBox.recordKeyContext(kind, id, keyOffice, generation: generation)
                    )
                )
            } catch {
                throw HavenError(
                    code: .dataLoss,
                    message: "the key of \(kind) \(id) does not open with its office's key"
                )
            }
        }
        guard create else { return nil }
        guard let (generation, officeKey) = try self.officeKey(office, create: true) else { return nil }
        let key = SymmetricKey(size: .bits256)
        let wrapped = try key.withUnsafeBytes { bytes in
            try SealBox.seal(
                Array(bytes),
                key: officeKey,
                context: SealBox.recordKeyContext(kind, id, office, generation: generation)
            )
        }
        try self.sql.execute(
            "INSERT INTO recordKey (kind, id, officeCode, generation, wrappedKey) VALUES (?, ?, ?, ?, ?)",
            [kind, id, office, generation, Data(wrapped)]
        )
        return key
    }

    func hasRecordKey(kind: RecordKind, id: String) throws -> Bool {
        try self.sql.row("SELECT 1 FROM recordKey WHERE kind = ? AND id = ?", [kind.rawValue, id]) != nil
    }

    // MARK: Sealed fields

    func sealFields(
        _ fields: SealedFields,
        kind: RecordKind,
        id: String,
        office: String,
        version: UInt64
    ) throws
        -> [UInt8]?
    {
        guard !fields.isEmpty else { return nil }
        guard let key = try self.recordKey(kind: kind.rawValue, id: id, office: office, create: true) else {
            return nil
        }
        let plaintext = FieldSealing.encode(fields)
        return try SealBox.seal(
            plaintext,
            key: key,
            context: SealBox.fieldsContext(kind.rawValue, id, office, version: version)
        )
    }

    func openFields(
        _ sealed: [UInt8],
        kind: String,
        id: String,
        office: String,
        version: UInt64
    ) throws
        -> SealedFields
    {
        guard let key = try self.recordKey(kind: kind, id: id, office: office, create: false) else {
            throw HavenError(code: .dataLoss, message: "sealed fields of \(kind) \(id) have no key")
        }
        do {
            let plaintext = try SealBox.open(
                sealed,
                key: key,
                context: SealBox.fieldsContext(kind, id, office, version: version)
            )
            guard let fields = FieldSealing.decode(plaintext) else { throw HavenError(code: .dataLoss, message: "") }
            return fields
        } catch {
            throw HavenError(
                code: .dataLoss,
                message: "sealed fields of \(kind) \(id) do not open for version \(version) (moved or rolled back?)"
            )
        }
    }

    // MARK: Identities

    func sealIdentity<R: StoredRecord>(_ identity: Haven_V1_SurvivorIdentity, of record: R) throws -> [UInt8] {
        guard R.recordKind == .survivor else {
            throw HavenError(code: .internal, message: "only survivors have an identity")
        }
        let plaintext: [UInt8]
        do {
            plaintext = try identity.serializedBytes()
        } catch {
            throw HavenError(code: .internal, message: "could not serialize an identity")
        }
        return try self.sealIdentityBytes(plaintext, of: record)
    }

    func sealIdentityBytes<R: StoredRecord>(_ plaintext: [UInt8], of record: R) throws -> [UInt8] {
        let office = record.index.officeCode ?? ""
        guard
            let key = try self.recordKey(kind: R.recordKind.rawValue, id: record.recordID, office: office, create: true)
        else {
            throw HavenError(code: .internal, message: "no key to seal an identity with")
        }
        return try SealBox.seal(
            plaintext,
            key: key,
            context: SealBox.identityContext(record.recordID, office, version: record.recordVersion)
        )
    }

    func openIdentity(_ sealed: [UInt8], survivorID: String, office: String, version: UInt64) throws -> [UInt8] {
        do {
            switch sealed.first {
            case SealBox.format:
                guard let key = try self.recordKey(kind: "survivor", id: survivorID, office: office, create: false)
                else {
                    throw HavenError(code: .dataLoss, message: "a sealed identity has no key")
                }
                return try SealBox.open(
                    sealed,
                    key: key,
                    context: SealBox.identityContext(survivorID, office, version: version)
                )
            case SealBox.legacyFormat:
                guard let (_, officeKey) = try self.officeKey(office, create: false) else {
                    throw HavenError(code: .dataLoss, message: "office \(office) has no key")
                }
                return try SealBox.open(sealed, key: officeKey, context: SealBox.legacyIdentityContext(survivorID))
            default:
                throw HavenError(code: .dataLoss, message: "a sealed identity has an unknown format")
            }
        } catch let error as HavenError {
            throw error
        } catch {
            throw HavenError(
                code: .dataLoss,
                message: "a sealed identity does not open for this survivor's current version (moved or rolled back?)"
            )
        }
    }

    // MARK: Erasure and rotation

    /// Destroys a record's key and drops its sealed fields from the change
    /// log's history (`secure_delete` overwrites the freed bytes).
    func eraseRecordKey(kind: RecordKind, id: String) throws {
        self.journal.recordKeys["\(kind.rawValue)/\(id)"] = nil
        self.group?.recordKeys["\(kind.rawValue)/\(id)"] = nil
        try self.sql.execute("DELETE FROM recordKey WHERE kind = ? AND id = ?", [kind.rawValue, id])
        try self.sql.execute(
            "UPDATE change SET sealed = NULL WHERE recordKind = ? AND recordID = ? AND sealed IS NOT NULL",
            [kind.rawValue, id]
        )
    }

    func rotateKeys(master newMaster: MasterKeyMaterial?, offices: [String]) throws -> KeyRotation {
        let keys = try self.requiredKeys
        if let newMaster {
            keys.add(newMaster)
        }
        let target = try newMaster ?? self.currentMaster()
        var officesRotated = 0
        var rewrapped = 0
        let rows = try self.sql.rows(
            "SELECT officeCode, wrappedKey, generation, masterKey FROM officeKey ORDER BY officeCode"
        )
        for row in rows {
            let office: String = try row["officeCode"]
            let generation: Int64 = try row["generation"]
            let oldKey = try self.unwrapOfficeKey(
                office,
                wrapped: Array(try row["wrappedKey"] as Data),
                generation: generation,
                master: try row["masterKey"]
            )
            var officeKey = oldKey
            var newGeneration = generation
            if offices.contains(office) {
                officeKey = SymmetricKey(size: .bits256)
                newGeneration = generation + 1
                officesRotated += 1
                let recordKeys = try self.sql.rows(
                    "SELECT kind, id, wrappedKey FROM recordKey WHERE officeCode = ? AND generation = ?",
                    [office, generation]
                )
                for recordKey in recordKeys {
                    let kind: String = try recordKey["kind"]
                    let id: String = try recordKey["id"]
                    let bytes = try SealBox.open(
                        Array(try recordKey["wrappedKey"] as Data),
                        key: oldKey,
                        context: SealBox.recordKeyContext(kind, id, office, generation: generation)
                    )
                    let wrapped = try SealBox.seal(
                        bytes,
                        key: officeKey,
                        context: SealBox.recordKeyContext(kind, id, office, generation: newGeneration)
                    )
                    try self.sql.execute(
                        "UPDATE recordKey SET wrappedKey = ?, generation = ? WHERE kind = ? AND id = ?",
                        [Data(wrapped), newGeneration, kind, id]
                    )
                    rewrapped += 1
                }
            }
            let wrapped = try officeKey.withUnsafeBytes { bytes in
                try SealBox.seal(
                    Array(bytes),
                    key: target.key,
                    context: SealBox.officeKeyContext(office, generation: newGeneration)
                )
            }
            try self.sql.execute(
                "UPDATE officeKey SET wrappedKey = ?, generation = ?, masterKey = ? WHERE officeCode = ?",
                [Data(wrapped), newGeneration, target.fingerprint, office]
            )
        }
        try self.setMasterKeyFingerprint(target.fingerprint)
        return KeyRotation(officesRotated: officesRotated, recordKeysRewrapped: rewrapped)
    }
}
