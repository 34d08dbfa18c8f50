import Foundation
import HavenProtocol
import HavenWireTesting
import SwiftProtobuf
import Testing

@testable import HavenStore

/// The bytes an audit entry's hash covers. Every entry in every store was
/// hashed over swift-protobuf's deterministic encoding, and auditors verify
/// entries from PROTOCOL.md's description of it, so whatever encoder writes
/// them must write the very same bytes.
@Suite("Audit chain bytes")
struct AuditChainTests {
    /// swift-protobuf's deterministic encoding of the entry without its `entry_hash`.
    static func reference(_ entry: Haven_V1_AuditEntry) throws -> [UInt8] {
        var entry = entry
        entry.entryHash = Data()
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        return try entry.serializedBytes(options: options)
    }

    @Test("an entry's canonical bytes are swift-protobuf's deterministic encoding, for random entries")
    func randomEntries() throws {
        var random = RandomMessages(seed: 0xa0d1_7c4a)
        for index in 0..<2_000 {
            let entry = try Haven_V1_AuditEntry(
                serializedBytes: random.encoding(of: Haven_V1_AuditEntry.protoMessageName, style: .canonical)
            )
            #expect(try AuditChain.canonicalBytes(entry) == Self.reference(entry), "entry #\(index)")
        }
    }

    @Test("a fixed entry hashes as entries always have")
    func fixedEntry() throws {
        var entry = Haven_V1_AuditEntry()
        entry.sequence = 1_234_567
        entry.atUnixMs = 1_764_892_800_123
        entry.principalID = "worker-kol"
        entry.principalRole = .caseworker
        entry.action = "haven.v1.CaseService/AppendCaseEvent"
        entry.outcome = .ok
        entry.requestID = "c-17/42"
        entry.detail = "a fictional detail, with ünïcödé"
        var resource = Haven_V1_AuditResource()
        resource.kind = "case"
        resource.id = "case_0123456789abcdef"
        resource.officeCode = "KOL"
        resource.version = 7
        resource.storedHash = Data(repeating: 0xab, count: 32)
        resource.disclosed = "identity"
        entry.resources = [resource, resource]
        var change = Haven_V1_AuditChange()
        change.sequence = 99
        change.storedHash = Data(repeating: 0xcd, count: 32)
        entry.changes = [change]
        entry.previousHash = Data(repeating: 0x01, count: 32)
        entry.entryHash = Data(repeating: 0xff, count: 32)
        let canonical = try AuditChain.canonicalBytes(entry)
        #expect(canonical == (try Self.reference(entry)))
        let hash = AuditChain.entryHash(canonical: canonical).map { String(format: "%02x", $0) }.joined()
        #expect(hash == "d43d4db9fc03f40006bd6bdaed65c5b27442bbc8a6c2e883fc0f5f17e25aa5fc")
    }
}
