import Crypto
import Foundation
import GRDB
import HavenProtocol
import HavenTestSupport
import SwiftProtobuf
import Testing

@testable import HavenStore

/// A database written before the audit trail and per-record keys: opening it
/// seals what was plain, re-seals old-format identities under their own keys,
/// and puts everything that exists under the audit chain.
@Suite("Upgrading a v1 database")
struct UpgradeTests {
    @Test("seals legacy notes in records and history, re-seals legacy identities, adopts everything into the chain")
    func upgrade() async throws {
        let directory = try TemporaryDirectory("haven-upgrade")
        defer { directory.remove() }
        let path = directory.path("haven.sqlite")
        let master = SymmetricKey(size: .bits256)

        // The v1 schema, written as the previous release wrote it.
        let queue = try DatabaseQueue(path: path)
        try SQLiteStore.migrator.migrate(queue, upTo: "v1-records")
        let officeKey = SymmetricKey(size: .bits256)
        let wrapped = try officeKey.withUnsafeBytes { bytes in
            try SealBox.seal(Array(bytes), key: master, context: "haven.v1 office key KOL")
        }
        var identity = Haven_V1_SurvivorIdentity()
        identity.legalName = "LEGACY-NAME"
        let sealedIdentity =
            [UInt8(1)]
            + Array(
                try AES.GCM.seal(
                    try identity.serializedBytes() as [UInt8],
                    using: officeKey,
                    authenticating: Data("haven.v1 identity srv_1".utf8)
                ).combined!
            )
        var survivor = Haven_V1_Survivor()
        survivor.id = "srv_1"
        survivor.code = "KOL-S-0001"
        survivor.officeCode = "KOL"
        survivor.version = 2
        var record = Haven_V1_Case()
        record.id = "case_1"
        record.reference = "KOL-2025-0001"
        record.officeCode = "KOL"
        record.version = 3
        var event = Haven_V1_CaseEvent()
        event.id = "evt_1"
        event.note.text = "LEGACY-NOTE"
        record.events = [event]
        var change = Haven_V1_ChangeEvent()
        change.kind = .updated
        change.caseRecord = record
        try await queue.write { [survivor, record, change] db in
            try db.execute(
                sql: "INSERT INTO officeKey (officeCode, wrappedKey) VALUES ('KOL', ?)",
                arguments: [Data([1] + wrapped.dropFirst())]
            )
            for (kind, id, version, body, secret) in [
                ("survivor", "srv_1", 2, try survivor.serializedBytes() as Data, Data(sealedIdentity) as Data?),
                ("case", "case_1", 3, try record.serializedBytes() as Data, nil),
            ] {
                try db.execute(
                    sql: """
                        INSERT INTO record (kind, id, officeCode, createdAt, updatedAt, version, body, secret)
                        VALUES (?, ?, 'KOL', 1, 1, ?, ?, ?)
                        """,
                    arguments: [kind, id, version, body, secret]
                )
            }
            try db.execute(
                sql: "INSERT INTO change (committedAt, officeCode, body) VALUES (1, 'KOL', ?)",
                arguments: [try change.serializedBytes() as Data]
            )
            try db.execute(
                sql:
                    "INSERT INTO account (id, displayName, role, officeCodes, partnerID, enabled, createdAt) VALUES ('admin', 'Admin', 1, '', '', 1, 1)"
            )
        }
        try queue.close()
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).range(of: Data("LEGACY-NOTE".utf8)) != nil)

        let store = try SQLiteStore(path: path, keys: StoreKeys([MasterKeyMaterial(key: master)]))
        // Everything still reads, the same.
        #expect(try await store.read { try $0.identity(survivorID: "srv_1") }?.legalName == "LEGACY-NAME")
        // The timeline moved out of the case's record into a row per event.
        let upgraded = try await store.read { try $0.load(Haven_V1_Case.self, id: "case_1") }
        #expect(upgraded?.events.isEmpty == true)
        #expect(upgraded?.eventCount == 1)
        #expect(upgraded?.version == 3, "moving the timeline is not a change of the case")
        let timeline = try await store.read { try $0.caseEvents(.timeline("case_1", limit: 10)) }
        #expect(timeline.map(\.event.id) == ["evt_1"])
        #expect(timeline.first?.event.sequence == 1)
        #expect(timeline.first?.event.note.text == "LEGACY-NOTE")
        let history = try await store.read { try $0.changes(after: 0, limit: 10) }
        #expect(history.first?.event.caseRecord.events.first?.note.text == "LEGACY-NOTE")
        // … but nothing of it is plain on disk any more.
        let checkpoint = try DatabaseQueue(path: path)
        try await checkpoint.writeWithoutTransaction { try $0.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        try checkpoint.close()
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).range(of: Data("LEGACY-NOTE".utf8)) == nil)
        let secret = try await store.read { tx in
            try Data.fetchOne(
                (tx as! SQLTransaction).sqliteDatabase!,
                sql: "SELECT secret FROM record WHERE id = 'srv_1'"
            )
        }
        #expect(secret?.first == SealBox.format, "the identity is under its own key now, bound to its version")

        // Every record, account and change is covered by an adoption entry,
        // and the moved timeline by the migration's.
        let entries = try await store.read { try $0.auditEntries(AuditQuery(limit: 100)) }
        #expect(entries.map(\.action) == ["store.adopt", "store.migrate"])
        #expect(entries.allSatisfy { $0.principalID == "havend" })
        #expect(entries.last?.resources.map { "\($0.kind)/\($0.id)" } == ["case/case_1", "caseEvent/case_1/1"])
        let covered = Set(entries.flatMap(\.resources).map { "\($0.kind)/\($0.id)" })
        let hashes = try await store.read { try $0.storedHashes() }
        #expect(covered == Set(hashes.keys))
        #expect(entries.flatMap(\.changes).map(\.sequence) == [1])
    }
}

@Suite("Sealed fields")
struct SealedFieldsTests {
    @Test("encode and decode round trip, and malformed plaintext is refused")
    func roundTrip() {
        let fields: SealedFields = [
            "event/evt_1": "Fictional note", "placement/plc_1": "घर (fictional)", "service/svc_1": "",
            "note": String(repeating: "x", count: 300),
        ]
        let bytes = FieldSealing.encode(fields)
        #expect(FieldSealing.decode(bytes) == fields)
        #expect(FieldSealing.decode([]) == [:])
        #expect(FieldSealing.decode(Array(bytes.dropLast())) == nil, "truncated")
        #expect(FieldSealing.decode([0x05, 0x61]) == nil, "length past the end")
        #expect(FieldSealing.decode([0x01, 0xFF, 0x00]) == nil, "invalid UTF-8")
        #expect(FieldSealing.decode([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]) == nil)
    }
}
