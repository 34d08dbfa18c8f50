import Crypto
import Foundation
import GRDB
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import NIOCore
import SwiftProtobuf
import Testing

/// Online backups of a running server, and restores onto a new directory.
@Suite("Backup and restore")
struct BackupTests {
    /// A running deployment with a backup key, some records and a partner feed position.
    static func deployment(key: BackupKey) async throws -> (TestDeployment, RunningServer) {
        let deployment = try TestDeployment()
        let server = try await deployment.start { $0.backupPublicKey = key.publicKeyBase64 }
        return (deployment, server)
    }

    /// The audit chain of `store`, its checkpoints checked with the signing key of `directory`.
    static func verdict(
        _ store: any RecordStore,
        signedIn directory: DataDirectory
    ) async throws
        -> Haven_V1_AuditVerdict
    {
        try await AuditVerifier(
            store: store,
            publicKey: try CheckpointSigner.loadExisting(at: directory.auditSigningKeyFile).publicKey
        ).verify()
    }

    static func backup(_ admin: RawConnection, id: UInt64) async throws -> ([UInt8], Haven_V1_BackupSummary) {
        try await admin.send(
            .start(
                callID: id,
                method: MethodCatalog.OperationsService.createBackup,
                request: Haven_V1_CreateBackupRequest()
            )
        )
        var bytes: [UInt8] = []
        var summary: Haven_V1_BackupSummary?
        while let envelope = try await admin.next(timeout: .seconds(30)), envelope.callID == id {
            switch envelope.kind {
            case .message(let message):
                let chunk = try Haven_V1_BackupChunk(serializedBytes: message.payload)
                bytes += chunk.data
                if chunk.hasSummary { summary = chunk.summary }
                try await admin.send(.credit(callID: id, messages: 1))
            case .end(let end):
                if let error = end.error { throw error }
                return (bytes, try #require(summary))
            default:
                break
            }
        }
        throw HavenError(code: .unavailable, message: "the backup stream ended early")
    }

    @Test(
        "an online backup of a running server restores on a fresh directory with every record, key and certificate identical, verified first; the old feed cursors get a FeedReset"
    )
    func roundTrip() async throws {
        let key = BackupKey()
        let (deployment, server) = try await Self.deployment(key: key)
        let admin = try await CredentialTests.admin(deployment, server)
        try await CredentialTests.office("KOL", on: admin, callID: 1)
        _ = try await CredentialTests.createCaseworker("field-worker", on: admin, callID: 3)

        // A cursor at the present, before the backup; then a change after it.
        let director = try await RawConnection.connect(
            port: server.port,
            credentials: try deployment.credentials(for: "director-kol")
        )
        try await director.hello()
        var follow = Haven_V1_SubscribeRequest()
        follow.start = .now
        let cursor = try #require(try await Self.feed(director, follow, id: 1).last?.caughtUp.cursor)

        let (file, summary) = try await Self.backup(admin, id: 5)
        #expect(UInt64(file.count) == summary.bytes)
        #expect(SHA256.hash(data: file).map { String(format: "%02x", $0) }.joined() == summary.sha256)
        #expect(
            Set(summary.files.map(\.path)).isSuperset(of: [
                "haven.sqlite", "master.key", "audit-signing.key", "haven.conf", "tls/ca.pem", "tls/issuing.pem",
                "tls/issuing-key.pem", "tls/server.pem", "tls/server-key.pem",
            ])
        )
        #expect(!summary.files.contains { $0.path == "tls/ca-key.pem" }, "the root key stays offline")
        #expect(summary.notIncluded.first?.hasPrefix("tls/ca-key.pem") == true)
        #expect(!file.contains(subsequence: Array("BEGIN PRIVATE KEY".utf8)), "encrypted: no key in the clear")

        // Writes go on after the backup.
        _ = try await CredentialTests.createCaseworker("later-worker", on: admin, callID: 7)
        let status = try await admin.unary(MethodCatalog.OperationsService.getServerStatus, .init(), id: 9)
        #expect(status.lastBackupSha256 == summary.sha256 && status.lastBackupAtUnixMs > 0)
        #expect(status.connections >= 2 && status.callsTotal >= 5 && status.databaseBytes > 0)
        #expect(!status.backupKeyFingerprint.isEmpty && status.development)
        await director.close()
        await admin.close()
        try await server.stop()

        // Restore on a "new machine".
        let machine = try TemporaryDirectory("haven-restore")
        defer { machine.remove() }
        let backupFile = machine.path("haven.hvbk")
        try Data(file).write(to: URL(fileURLWithPath: backupFile))
        let target = DataDirectory(machine.url.appendingPathComponent("data"))

        // The wrong key, a truncated and an altered file are refused, and leave nothing behind.
        let wrong = await #expect(throws: HavenError.self) {
            try await BackupRestore.restore(
                file: backupFile,
                key: BackupKey(),
                target: target,
                replace: false,
                operatorID: "test",
                now: 1
            )
        }
        #expect(wrong?.code == .dataLoss)
        try Data(file.prefix(file.count - 100)).write(to: URL(fileURLWithPath: machine.path("cut.hvbk")))
        let cut = await #expect(throws: HavenError.self) {
            try await BackupRestore.restore(
                file: machine.path("cut.hvbk"),
                key: key,
                target: target,
                replace: false,
                operatorID: "test",
                now: 1
            )
        }
        #expect(cut?.code == .dataLoss)
        var altered = file
        altered[altered.count / 2] ^= 0x01
        try Data(altered).write(to: URL(fileURLWithPath: machine.path("altered.hvbk")))
        let changed = await #expect(throws: HavenError.self) {
            try await BackupRestore.restore(
                file: machine.path("altered.hvbk"),
                key: key,
                target: target,
                replace: false,
                operatorID: "test",
                now: 1
            )
        }
        #expect(changed?.code == .dataLoss)
        #expect(!FileManager.default.fileExists(atPath: target.root.path))
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: machine.path("")).filter { $0.contains("restoring") }
                .isEmpty
        )

        let report = try await BackupRestore.restore(
            file: backupFile,
            key: key,
            target: target,
            replace: false,
            operatorID: "test",
            now: 2
        )
        #expect(report.verdict.intact && report.verdict.entries == summary.auditEntries)
        for name in ["master.key", "audit-signing.key", "tls/ca.pem", "tls/issuing-key.pem", "tls/server.pem"] {
            #expect(
                FileManager.default.contents(atPath: target.path(name))
                    == FileManager.default.contents(atPath: deployment.dataDirectory.path(name)),
                "\(name) restored identical"
            )
        }
        // A second restore into the same (now used) directory needs --replace.
        let again = await #expect(throws: HavenError.self) {
            try await BackupRestore.restore(
                file: backupFile,
                key: key,
                target: target,
                replace: false,
                operatorID: "test",
                now: 3
            )
        }
        #expect(again?.code == .failedPrecondition)

        // Every record as it was at the backup: the first worker, not the later one.
        let restored = try await deployment.start(on: target) { $0.backupPublicKey = key.publicKeyBase64 }
        let restoredAdmin = try await RawConnection.connect(
            port: restored.port,
            credentials: try deployment.credentials(for: "admin", in: target)
        )
        try await restoredAdmin.hello()
        let accounts = try await restoredAdmin.unary(MethodCatalog.AccountService.listAccounts, .init(), id: 1)
        #expect(accounts.accounts.contains { $0.id == "field-worker" })
        #expect(!accounts.accounts.contains { $0.id == "later-worker" })
        let office = try await restoredAdmin.unary(
            MethodCatalog.OfficeService.getOffice,
            .with { $0.code = "KOL" },
            id: 3
        )
        #expect(office.name == "Fictional KOL")

        // The feed cursor from before the backup is from another lineage: OUT_OF_RANGE with where to resume.
        let reader = try await RawConnection.connect(
            port: restored.port,
            credentials: try deployment.credentials(for: "director-kol", in: target)
        )
        try await reader.hello()
        var resume = Haven_V1_SubscribeRequest()
        resume.start = .afterCursor
        resume.cursor = cursor
        let reset = try await reader.call(MethodCatalog.FeedService.subscribe, resume, id: 1)
        #expect(reset.statusCode == .outOfRange)
        let detail = try #require(reset.details.first { $0.feedReset.resumeCursor.isEmpty == false })
        #expect(reset.message.contains("restored from a backup"))
        resume.cursor = detail.feedReset.resumeCursor
        let resumed = try await reader.call(MethodCatalog.FeedService.subscribe, resume, id: 3)
        #expect(resumed.error == nil, "the FeedReset's cursor works")
        let verdict = try await Self.verdict(restored.store, signedIn: target)
        #expect(verdict.intact, "\(verdict.problem)")
        let entries = try await restored.store.read { tx in
            var query = AuditQuery(limit: 10)
            query.newestFirst = true
            query.action = "store.restore"
            return try tx.auditEntries(query)
        }
        #expect(entries.count == 1)
        await reader.close()
        await restoredAdmin.close()
        try await restored.stop()
    }

    /// The items of a finite feed read (follow = false), with credit for each.
    static func feed(
        _ connection: RawConnection,
        _ request: Haven_V1_SubscribeRequest,
        id: UInt64
    ) async throws
        -> [Haven_V1_FeedItem]
    {
        try await connection.send(.start(callID: id, method: MethodCatalog.FeedService.subscribe, request: request))
        var items: [Haven_V1_FeedItem] = []
        while let envelope = try await connection.next(timeout: .seconds(10)), envelope.callID == id {
            switch envelope.kind {
            case .message(let message):
                items.append(try Haven_V1_FeedItem(serializedBytes: message.payload))
                try await connection.send(.credit(callID: id, messages: 1))
            case .end(let end):
                if let error = end.error { throw error }
                return items
            default:
                break
            }
        }
        throw HavenError(code: .unavailable, message: "the feed ended early")
    }

    @Test("without a backup key configured, a backup is refused and says how to configure one; non-admins are refused")
    func notConfigured() async throws {
        let deployment = try TestDeployment()
        let server = try await deployment.start()
        let admin = try await CredentialTests.admin(deployment, server)
        let refused = try await admin.call(MethodCatalog.OperationsService.createBackup, .init(), id: 1)
        #expect(refused.statusCode == .failedPrecondition && refused.message.contains("backup_public_key"))
        let worker = try await RawConnection.connect(
            port: server.port,
            credentials: try deployment.credentials(for: "worker-kol")
        )
        try await worker.hello()
        #expect(
            try await worker.call(MethodCatalog.OperationsService.createBackup, .init(), id: 1).statusCode
                == .permissionDenied
        )
        await worker.close()
        await admin.close()
        try await server.stop()
    }

    @Test("the cipher: chunks open only in order, to the right key, and complete")
    func cipher() throws {
        let key = BackupKey()
        var sealed: [UInt8] = []
        let sealer = try BackupCipher.Sealer(recipient: key.privateKey.publicKey) { sealed += $0 }
        let plaintext = (0..<200_000).map { UInt8($0 % 251) }
        try sealer.add(plaintext)
        try sealer.finish()
        func open(_ bytes: [UInt8], with key: BackupKey) throws -> [UInt8] {
            var offset = 0
            var out: [UInt8] = []
            try BackupCipher.open(
                key: key,
                read: { count in
                    let part = Array(bytes[offset..<min(bytes.count, offset + count)])
                    offset += part.count
                    return part
                },
                plaintext: { out += $0 }
            )
            return out
        }
        #expect(try open(sealed, with: key) == plaintext)
        #expect(throws: HavenError.self) { try open(sealed, with: BackupKey()) }
        // Dropping the last chunk (what a cut at a chunk boundary looks like) is caught.
        let firstChunkEnd = 56 + 4 + 65536 + 16
        #expect(throws: HavenError.self) { try open(Array(sealed.prefix(firstChunkEnd)), with: key) }
        #expect(throws: HavenError.self) { try open(sealed + [0], with: key) }
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence: [UInt8]) -> Bool {
        guard subsequence.count <= self.count else { return false }
        return (0...(self.count - subsequence.count)).contains {
            Array(self[$0..<($0 + subsequence.count)]) == subsequence
        }
    }
}

@Suite("CSV output")
struct CSVTests {
    @Test(
        "cells a spreadsheet would run as formulas are defused; quotes, commas and newlines are quoted",
        arguments: [
            ("plain", "plain"), ("=HYPERLINK(\"x\")", "\"'=HYPERLINK(\"\"x\"\")\""), ("+1", "'+1"), ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"), ("a,b", "\"a,b\""), ("two\nlines", "\"two\nlines\""), ("\tx", "'\tx"),
            ("", ""),
        ]
    )
    func cell(input: String, expected: String) {
        #expect(CSV.cell(input) == expected)
    }
}

@Suite("Feed cursors across lineages")
struct FeedLineageTests {
    @Test("a v1 cursor (from before lineages) is still read; a v2 cursor of another lineage gets a FeedReset")
    func cursors() async throws {
        let haven = try InProcessHaven(accounts: AccountServiceTests.accounts)
        let admin = try haven.principal("admin")
        func base64url(_ text: String) -> String {
            Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        }
        var request = Haven_V1_SubscribeRequest()
        request.start = .afterCursor
        request.cursor = base64url("v1:0")
        let items = try await haven.collect(MethodCatalog.FeedService.subscribe, request, as: admin)
        let caughtUp = try #require(items.last?.caughtUp.cursor)
        #expect(!caughtUp.isEmpty, "the v1 cursor was read, up to the present")
        request.cursor = base64url("v2:0123456789abcdef:0")
        do {
            _ = try await haven.collect(MethodCatalog.FeedService.subscribe, request, as: admin)
            Issue.record("a cursor of another lineage was accepted")
        } catch let error as HavenError {
            #expect(error.code == .outOfRange)
            #expect(error.details.contains { !$0.feedReset.resumeCursor.isEmpty })
        }
    }
}
