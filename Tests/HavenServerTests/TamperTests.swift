import Foundation
import GRDB
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import SwiftProtobuf
import Testing

/// Someone with the database file changes history by hand; the verifier
/// catches each change and names the first bad position. Every case edits a
/// fresh copy of the same real database file with plain SQL, as an attacker
/// with `sqlite3` would (`PRAGMA integrity_check` says ok to all of them).
@Suite("Tamper evidence")
struct TamperTests {
    /// The scenario, a clean copy of its database, and what the cases need.
    struct Fixture {
        let scenario: AccountabilityScenario
        let template: String
        let exported: Haven_V1_AuditCheckpoint
        let survivorID: String
        let caseID: String
        /// The survivor's sealed identity at its first version.
        let firstSecret: Data

        static func build() async throws -> Fixture {
            let scenario = try await AccountabilityScenario()
            let survivor = try await scenario.survivor("TAMPER", key: "s1")
            let firstSecret = try TamperTests.secret(scenario.databasePath, survivor.id)
            let record = try await scenario.caseRecord("TAMPER", survivor: survivor, key: "c1")
            // An auditor exports a checkpoint, and keeps it elsewhere.
            let exported = try await scenario.call("auditor", MethodCatalog.AuditService.signCheckpoint, .init())
            // Work goes on after it.
            var update = Haven_V1_UpdateSurvivorRequest()
            let current = try await scenario.call(
                "director-kol",
                MethodCatalog.SurvivorService.getSurvivor,
                .with { $0.survivorID = survivor.id }
            )
            update.survivorID = survivor.id
            update.expectedVersion = current.version
            update.ageAtIntake = 16
            update.identity.legalName = "TAMPER-NAME-CORRECTED"
            _ = try await scenario.call("director-kol", MethodCatalog.SurvivorService.updateSurvivor, update)
            _ = try await scenario.closeCase(
                try await scenario.call(
                    "director-kol",
                    MethodCatalog.CaseService.getCase,
                    .with { $0.caseID = record.id }
                )
            )
            let template = scenario.haven.directory.path("template.sqlite")
            try scenario.backup(to: template)
            return Fixture(
                scenario: scenario,
                template: template,
                exported: exported,
                survivorID: survivor.id,
                caseID: record.id,
                firstSecret: firstSecret
            )
        }

        /// Applies `edit` to a fresh copy of the database and verifies it.
        func tampered(
            trusted: [Haven_V1_AuditCheckpoint] = [],
            _ edit: (Database) throws -> Void
        ) async throws -> Haven_V1_AuditVerdict {
            let copy = self.scenario.haven.directory.path("tampered-\(UUID().uuidString).sqlite")
            try FileManager.default.copyItem(atPath: self.template, toPath: copy)
            #expect(try TamperTests.edit(copy, edit) == "ok")
            return try await self.scenario.verify(copy, trusted: trusted)
        }

        func latestEntry(kind: String, id: String) async throws -> UInt64 {
            try #require(try await self.scenario.entries(kind: kind, id: id).last?.sequence)
        }
    }

    /// Edits a database file with plain SQL; returns `PRAGMA integrity_check` afterwards.
    static func edit(_ path: String, _ edit: (Database) throws -> Void) throws -> String? {
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in try edit(db) }
        let check = try queue.read { try String.fetchOne($0, sql: "PRAGMA integrity_check") }
        try queue.close()
        return check
    }

    static func secret(_ path: String, _ id: String) throws -> Data {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        return try queue.read { db in
            try Data.fetchOne(db, sql: "SELECT secret FROM record WHERE id = ?", arguments: [id])!
        }
    }

    static func entry(_ db: Database, _ sequence: Int64) throws -> Haven_V1_AuditEntry {
        try Haven_V1_AuditEntry(
            serializedBytes: try Data.fetchOne(
                db,
                sql: "SELECT body FROM audit WHERE sequence = ?",
                arguments: [sequence]
            )!
        )
    }

    static func deterministic(_ entry: Haven_V1_AuditEntry) throws -> Data {
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        return try entry.serializedBytes(options: options)
    }

    @Test("the untouched chain verifies; an entry edited, deleted, inserted or reordered is caught at its position")
    func intact() async throws {
        let fixture = try await Fixture.build()
        let verdict = try await fixture.scenario.verify(fixture.template, trusted: [fixture.exported])
        #expect(verdict.intact, "\(verdict.problem)")
        #expect(verdict.entries > 10)
        #expect(verdict.checkpointsChecked >= 2)
        #expect(verdict.recordsChecked > 10)

        // Each way of changing history, on its own copy.

        // An entry edited (its hash left as it was).
        var verdictEdited = try await fixture.tampered { db in
            var entry = try Self.entry(db, 3)
            entry.detail = "nothing happened here"
            entry.entryHash = Data()
            try db.execute(
                sql: "UPDATE audit SET body = ? WHERE sequence = 3",
                arguments: [try Self.deterministic(entry)]
            )
        }
        #expect(!verdictEdited.intact)
        #expect(verdictEdited.firstBadSequence == 3)
        #expect(verdictEdited.problem.contains("edited"), "\(verdictEdited.problem)")

        // An entry deleted.
        verdictEdited = try await fixture.tampered { db in try db.execute(sql: "DELETE FROM audit WHERE sequence = 4") }
        #expect(!verdictEdited.intact)
        #expect(verdictEdited.firstBadSequence == 4)
        #expect(verdictEdited.problem.contains("missing"), "\(verdictEdited.problem)")

        // An entry inserted: later entries renumbered, a forged one put at 4 that chains to 3 correctly.
        let inserted = try await fixture.tampered { db in
            try db.execute(sql: "UPDATE audit SET sequence = -sequence WHERE sequence >= 4")
            try db.execute(sql: "UPDATE audit SET sequence = 1 - sequence WHERE sequence < 0")
            var forged = try Self.entry(db, 3)
            forged.sequence = 4
            forged.previousHash = try Data.fetchOne(db, sql: "SELECT hash FROM audit WHERE sequence = 3")!
            forged.detail = "forged"
            forged.entryHash = Data()
            let body = try Self.deterministic(forged)
            try db.execute(
                sql:
                    "INSERT INTO audit (sequence, at, principalID, action, outcome, body, hash) VALUES (4, 0, 'x', 'x', 0, ?, ?)",
                arguments: [body, Data(AuditChain.entryHash(canonical: Array(body)))]
            )
        }
        #expect(!inserted.intact)
        #expect(inserted.firstBadSequence == 5, "the entry after the forged one no longer follows: \(inserted.problem)")

        // Two entries swapped.
        let reordered = try await fixture.tampered { db in
            let five = try Row.fetchOne(db, sql: "SELECT body, hash FROM audit WHERE sequence = 5")!
            let six = try Row.fetchOne(db, sql: "SELECT body, hash FROM audit WHERE sequence = 6")!
            try db.execute(
                sql: "UPDATE audit SET body = ?, hash = ? WHERE sequence = 5",
                arguments: [six["body"] as Data, six["hash"] as Data]
            )
            try db.execute(
                sql: "UPDATE audit SET body = ?, hash = ? WHERE sequence = 6",
                arguments: [five["body"] as Data, five["hash"] as Data]
            )
        }
        #expect(!reordered.intact)
        #expect(reordered.firstBadSequence == 5)
        #expect(reordered.problem.contains("reordered"), "\(reordered.problem)")
    }

    @Test("an edited record body, an edited role and a rolled-back identity are caught at the entry that wrote them")
    func records() async throws {
        let fixture = try await Fixture.build()

        // "A forged note": the case body edited (its title) in place.
        let caseEntry = try await fixture.latestEntry(kind: "case", id: fixture.caseID)
        let forged = try await fixture.tampered { db in
            var record = try Haven_V1_Case(
                serializedBytes: try Data.fetchOne(
                    db,
                    sql: "SELECT body FROM record WHERE id = ?",
                    arguments: [fixture.caseID]
                )!
            )
            record.title = "Nothing happened (forged)"
            try db.execute(
                sql: "UPDATE record SET body = ? WHERE id = ?",
                arguments: [try record.serializedBytes() as Data, fixture.caseID]
            )
        }
        #expect(!forged.intact)
        #expect(forged.firstBadSequence == caseEntry)
        #expect(forged.problem.contains("case/\(fixture.caseID)"), "\(forged.problem)")

        // The auditor promoted to director.
        let auditorEntry = try await fixture.latestEntry(kind: "account", id: "auditor")
        let promoted = try await fixture.tampered { db in
            try db.execute(
                sql: "UPDATE account SET role = ? WHERE id = 'auditor'",
                arguments: [Haven_V1_Role.director.rawValue]
            )
        }
        #expect(!promoted.intact)
        #expect(promoted.firstBadSequence == auditorEntry)
        #expect(promoted.problem.contains("account/auditor"), "\(promoted.problem)")

        // The sealed identity rolled back to the one of the first version.
        let survivorEntry = try await fixture.latestEntry(kind: "survivor", id: fixture.survivorID)
        let copy = fixture.scenario.haven.directory.path("rolled-back.sqlite")
        try FileManager.default.copyItem(atPath: fixture.template, toPath: copy)
        let (secret, id) = (fixture.firstSecret, fixture.survivorID)
        _ = try Self.edit(copy) { db in
            try db.execute(sql: "UPDATE record SET secret = ? WHERE id = ?", arguments: [secret, id])
        }
        let rolledBack = try await fixture.scenario.verify(copy)
        #expect(!rolledBack.intact)
        #expect(rolledBack.firstBadSequence == survivorEntry)
        // And it no longer opens: the box is bound to the version it was sealed for.
        let store = try SQLiteStore(path: copy, keys: fixture.scenario.haven.keys.keys)
        let refused = await #expect(throws: HavenError.self) {
            try await store.read { [survivorID = fixture.survivorID] in try $0.identity(survivorID: survivorID) }
        }
        #expect(refused?.code == .dataLoss)
        #expect(refused?.message.contains("TAMPER") == false)
    }

    @Test("deleted and reordered change-log rows are caught at the entry that appended them")
    func changes() async throws {
        let fixture = try await Fixture.build()
        let covering = try #require(
            try await fixture.scenario.haven.store.read { tx in
                try tx.auditEntries(AuditQuery(limit: 10_000)).first { $0.changes.contains { $0.sequence == 3 } }?
                    .sequence
            }
        )
        let deleted = try await fixture.tampered { db in try db.execute(sql: "DELETE FROM change WHERE sequence = 3") }
        #expect(!deleted.intact)
        #expect(deleted.firstBadSequence == covering)
        #expect(deleted.problem.contains("change 3"), "\(deleted.problem)")

        let swapped = try await fixture.tampered { db in
            let three = try Data.fetchOne(db, sql: "SELECT body FROM change WHERE sequence = 3")!
            let four = try Data.fetchOne(db, sql: "SELECT body FROM change WHERE sequence = 4")!
            try db.execute(sql: "UPDATE change SET body = ? WHERE sequence = 3", arguments: [four])
            try db.execute(sql: "UPDATE change SET body = ? WHERE sequence = 4", arguments: [three])
        }
        #expect(!swapped.intact)
        #expect(swapped.firstBadSequence == covering)
    }

    @Test("a chain rewritten from start to end passes on its own and is caught by a checkpoint exported earlier")
    func rewritten() async throws {
        let fixture = try await Fixture.build()
        // Entry 3 changed and every later entry re-hashed and re-chained; the
        // stored checkpoints (which the attacker cannot re-sign) deleted.
        let rewrite: (Database, Bool) throws -> Void = { db, deleteCheckpoints in
            let size = try Int64.fetchOne(db, sql: "SELECT MAX(sequence) FROM audit")!
            var previous = try Data.fetchOne(db, sql: "SELECT hash FROM audit WHERE sequence = 2")!
            for sequence in 3...size {
                var entry = try Self.entry(db, sequence)
                if sequence == 3 { entry.detail = "rewritten history" }
                entry.previousHash = previous
                entry.entryHash = Data()
                let body = try Self.deterministic(entry)
                let hash = Data(AuditChain.entryHash(canonical: Array(body)))
                try db.execute(
                    sql: "UPDATE audit SET body = ?, hash = ? WHERE sequence = ?",
                    arguments: [body, hash, sequence]
                )
                previous = hash
            }
            if deleteCheckpoints { try db.execute(sql: "DELETE FROM checkpoint") }
        }
        let alone = try await fixture.tampered { try rewrite($0, true) }
        #expect(alone.intact, "a consistent rewrite cannot be told from the chain alone; docs/SECURITY.md says so")
        let against = try await fixture.tampered(trusted: [fixture.exported]) { try rewrite($0, true) }
        #expect(!against.intact)
        #expect(against.firstBadSequence == fixture.exported.size)
        #expect(against.problem.contains("rewritten"), "\(against.problem)")

        // Had the stored checkpoints been left, they would have caught it too.
        let kept = try await fixture.tampered { try rewrite($0, false) }
        #expect(!kept.intact)
        #expect(kept.firstBadSequence == fixture.exported.size, "\(kept.problem)")

        // A chain cut short is caught by a checkpoint that covers more.
        let cut = try await fixture.tampered(trusted: [fixture.exported]) { db in
            try db.execute(sql: "DELETE FROM audit WHERE sequence >= ?", arguments: [Int64(fixture.exported.size)])
            try db.execute(sql: "DELETE FROM checkpoint")
        }
        #expect(!cut.intact)
        #expect(cut.firstBadSequence <= fixture.exported.size, "\(cut.problem)")
    }
}

/// `haven-admin audit verify --data-dir`, as an operator runs it.
@Suite("haven-admin audit verify")
struct AdminVerifyTests {
    @Test("exits 0 on an intact data directory and 1 naming the first bad entry on a tampered one")
    func verifyCommand() async throws {
        let admin = RepositoryPaths.root.appendingPathComponent(".build/debug/haven-admin")
        guard FileManager.default.isExecutableFile(atPath: admin.path) else {
            #expect(!runningInCI, "CI builds haven-admin with the tests; \(admin.path) is missing")
            print("SKIPPED: \(admin.path) is not built (run `swift build` first)")
            return
        }
        let temporary = try TemporaryDirectory("haven-admin-verify")
        defer { temporary.remove() }
        let data = DataDirectory(temporary.url.appendingPathComponent("data"))
        try data.initialize(development: true)
        let custodian = try KeyCustodian.load(masterKeyFile: data.masterKeyFile)
        let store = try SQLiteStore(path: data.databaseFile, keys: custodian.keys)
        for code in ["KOL", "MUM", "MNL"] {
            var office = Haven_V1_Office()
            office.code = code
            office.name = "Fictional \(code)"
            office.version = 1
            try await store.audited { [office] tx in try tx.insert(office) }
        }
        let intact = try run(admin, ["audit", "verify", "--data-dir", data.root.path])
        #expect(intact.status == 0, "\(String(decoding: intact.output + intact.error, as: UTF8.self))")
        #expect(String(decoding: intact.output, as: UTF8.self).contains("intact: 5 entries"))

        _ = try TamperTests.edit(data.databaseFile) { db in
            var entry = try TamperTests.entry(db, 3)
            entry.detail = "edited"
            entry.entryHash = Data()
            try db.execute(
                sql: "UPDATE audit SET body = ? WHERE sequence = 3",
                arguments: [try TamperTests.deterministic(entry)]
            )
        }
        let tampered = try run(admin, ["audit", "verify", "--data-dir", data.root.path])
        #expect(tampered.status == 1)
        let text = String(decoding: tampered.output, as: UTF8.self)
        #expect(text.contains("NOT INTACT: first bad entry 3: entry 3 does not match its hash (edited)"), "\(text)")

        let usage = try run(admin, ["audit", "verify"])
        #expect(usage.status != 0 && usage.status != 1)
        #expect(String(decoding: usage.error, as: UTF8.self).contains("exactly one of --credentials"))
    }
}
