import Crypto
import Foundation
import HavenProtocol

/// An audit entry to append: what the caller knows. The store adds the
/// sequence, the previous hash, the records, accounts and changes the
/// transaction wrote (with their stored hashes) and the entry's own hash.
package struct NewAuditEntry: Sendable {
    package var atUnixMs: Int64
    package var principalID: String
    package var principalRole: Haven_V1_Role
    package var action: String
    package var outcome: Haven_V1_StatusCode
    package var requestID: String
    package var detail: String
    /// Resources read or refused (written ones are added by the store).
    package var resources: [Haven_V1_AuditResource]

    package init(
        atUnixMs: Int64,
        principalID: String,
        principalRole: Haven_V1_Role = .unspecified,
        action: String,
        outcome: Haven_V1_StatusCode = .ok,
        requestID: String = "",
        detail: String = "",
        resources: [Haven_V1_AuditResource] = []
    ) {
        self.atUnixMs = atUnixMs
        self.principalID = principalID
        self.principalRole = principalRole
        self.action = action
        self.outcome = outcome
        self.requestID = requestID
        self.detail = detail
        self.resources = resources
    }
}

/// The hash chain's rules, shared by the stores (which append) and the
/// verifier (which checks).
package enum AuditChain {
    /// The `previous_hash` of the first entry.
    package static let zeroHash = [UInt8](repeating: 0, count: 32)

    /// Deterministic protobuf bytes of an entry without its `entry_hash`,
    /// written by the generated codec: fields in number order, as
    /// swift-protobuf's deterministic encoding writes them, which every entry
    /// so far was hashed over (the schema has no maps, the one place the two
    /// could differ; `AuditChainTests` holds the bytes to swift-protobuf's on
    /// random entries and a fixed entry to its hash).
    package static func canonicalBytes(_ entry: Haven_V1_AuditEntry) throws -> [UInt8] {
        var entry = entry
        entry.entryHash = Data()
        return entry.serializedPayload()
    }

    /// SHA-256(0x00 ‖ canonical bytes): 0x00 separates entry hashes from
    /// any other hash Haven computes, as RFC 6962 separates leaves from nodes.
    package static func entryHash(canonical: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: [0])
        hasher.update(data: canonical)
        return Array(hasher.finalize())
    }

    /// The text a checkpoint's signature covers.
    package static func checkpointText(size: UInt64, head: [UInt8], signedAtUnixMs: Int64) -> [UInt8] {
        Array("haven.v1 audit checkpoint\n\(size)\n\(Data(head).base64EncodedString())\n\(signedAtUnixMs)\n".utf8)
    }
}

/// Builds a SHA-256 over length-prefixed fields: no two different field
/// lists hash alike. The fields are laid out in one buffer and hashed once
/// (a write hashes every row it writes: a digest update per field, each
/// from a small array of its own, was about 2 % of the writer's time in a
/// profile).
struct StoredHasher {
    private var bytes: [UInt8] = []

    init(_ domain: String) {
        self.bytes.reserveCapacity(512)
        self.add(domain)
    }

    mutating func add(_ string: String?) {
        guard let string else {
            self.bytes.append(0xFF)
            return
        }
        self.bytes.append(0x01)
        self.add(Int64(string.utf8.count))
        self.bytes.append(contentsOf: string.utf8)
    }

    mutating func add<Bytes: Collection<UInt8>>(_ bytes: Bytes?) {
        guard let bytes else {
            self.bytes.append(0xFF)
            return
        }
        self.bytes.append(0x01)
        self.add(Int64(bytes.count))
        self.bytes.append(contentsOf: bytes)
    }

    mutating func add(_ value: Int64) {
        withUnsafeBytes(of: value.bigEndian) { self.bytes.append(contentsOf: $0) }
    }

    mutating func add(_ value: Bool) {
        self.bytes.append(value ? 1 : 0)
    }

    func finalize() -> [UInt8] { Array(SHA256.hash(data: self.bytes)) }
}

/// What one write transaction has written and not yet audited.
///
/// The store refuses to commit a transaction that wrote a record, an
/// account or a change without appending the audit entry that covers it
/// afterwards: a change can never survive without its entry, nor the reverse
/// (they commit together).
final class TransactionJournal {
    var resources: [Haven_V1_AuditResource] = []
    var changes: [Haven_V1_AuditChange] = []
    /// The sealed fields last written for a record version (`kind/id/version`):
    /// its change-log entry, appended next, stores the same box.
    var lastSealed: (key: String, box: [UInt8]?)?
    /// Record keys unwrapped in this transaction (`kind/id`): a write loads,
    /// then stores, the same record.
    var recordKeys: [String: SymmetricKey] = [:]
    /// The timeline rows written with the sequence of the audit entry
    /// expected to cover them (`<case id>/<sequence>` → entry), not yet audited.
    var auditHints: [String: Int64] = [:]
    /// Version, sealed identity and indexed columns of the records this
    /// transaction loaded or updated (`kind/id`), as they now stand in it,
    /// and the record itself (to tell whether its report facts changed).
    var loaded: [String: (version: Int64, secret: Data?, indexed: RecordRow.Indexed, record: any StoredRecord)] = [:]
    var unaudited: Bool { !self.resources.isEmpty || !self.changes.isEmpty }

    func wrote(kind: String, id: String, office: String?, version: UInt64, hash: [UInt8]) {
        var resource = Haven_V1_AuditResource()
        resource.kind = kind
        resource.id = id
        resource.officeCode = office ?? ""
        resource.version = version
        resource.storedHash = Data(hash)
        self.resources.append(resource)
    }

    func appended(change sequence: UInt64, hash: [UInt8]) {
        var change = Haven_V1_AuditChange()
        change.sequence = sequence
        change.storedHash = Data(hash)
        self.changes.append(change)
    }

    func take() -> (
        resources: [Haven_V1_AuditResource], changes: [Haven_V1_AuditChange], hints: [String: Int64]
    ) {
        defer {
            self.resources = []
            self.changes = []
            self.auditHints = [:]
        }
        return (self.resources, self.changes, self.auditHints)
    }
}
