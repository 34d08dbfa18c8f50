import Crypto
import Foundation
import GRDB
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import SwiftProtobuf
import Testing

/// Crypto-erasure: once a survivor is erased, nothing that identifies them
/// can be recovered — from the database, its WAL, the change log's history,
/// or a backup taken before — with the keys that exist afterwards.
@Suite("Erasure")
struct ErasureTests {
    /// Everything sealed in the database files at `paths` that `master`
    /// opens — office keys, the record keys they open, and every identity and
    /// sealed field those open, at any version — as plaintext bytes.
    static func recoverable(from paths: [String], master: SymmetricKey) throws -> [Data] {
        var officeKeys: [String: [SymmetricKey]] = [:]
        var recordKeys: [String: [SymmetricKey]] = [:]
        var blobs: [(kind: String, id: String, office: String, blob: [UInt8])] = []
        var services: [(survivorID: String, place: String, office: String, blob: [UInt8])] = []
        for path in paths {
            let queue = try DatabaseQueue(path: path)
            defer { try? queue.close() }
            try queue.read { db in
                for row in try Row.fetchAll(db, sql: "SELECT officeCode, generation, wrappedKey FROM officeKey") {
                    let office: String = row["officeCode"]
                    if let bytes = try? SealBox.open(
                        Array(row["wrappedKey"] as Data),
                        key: master,
                        context: SealBox.officeKeyContext(office, generation: row["generation"])
                    ) {
                        officeKeys[office, default: []].append(SymmetricKey(data: bytes))
                    }
                }
                for row in try Row.fetchAll(db, sql: "SELECT kind, id, secret, sealed, officeCode FROM record") {
                    for column in ["secret", "sealed"] {
                        if let blob = row[column] as Data? {
                            blobs.append((row["kind"], row["id"], row["officeCode"] ?? "", Array(blob)))
                        }
                    }
                }
                // A service's detail: sealed under the survivor's key, bound to the service's place.
                for row in try Row.fetchAll(
                    db,
                    sql: "SELECT survivorID, sequence, officeCode, sealed FROM survivorService WHERE sealed IS NOT NULL"
                ) {
                    let (id, sequence): (String, Int64) = (row["survivorID"], row["sequence"])
                    services.append((id, "\(id)/\(sequence)", row["officeCode"], Array(row["sealed"] as Data)))
                }
                for row in try Row.fetchAll(
                    db,
                    sql: "SELECT recordKind, recordID, officeCode, sealed FROM change WHERE sealed IS NOT NULL"
                ) {
                    blobs.append(
                        (row["recordKind"], row["recordID"], row["officeCode"] ?? "", Array(row["sealed"] as Data))
                    )
                }
            }
        }
        for path in paths {
            let queue = try DatabaseQueue(path: path)
            defer { try? queue.close() }
            try queue.read { db in
                for row in try Row.fetchAll(
                    db,
                    sql: "SELECT kind, id, officeCode, generation, wrappedKey FROM recordKey"
                ) {
                    let (kind, id, office): (String, String, String) = (row["kind"], row["id"], row["officeCode"])
                    for officeKey in officeKeys[office] ?? [] {
                        if let bytes = try? SealBox.open(
                            Array(row["wrappedKey"] as Data),
                            key: officeKey,
                            context: SealBox.recordKeyContext(kind, id, office, generation: row["generation"])
                        ) {
                            recordKeys["\(kind)/\(id)", default: []].append(SymmetricKey(data: bytes))
                        }
                    }
                }
            }
        }
        var plaintexts: [Data] = []
        for (kind, id, office, blob) in blobs {
            for key in recordKeys["\(kind)/\(id)"] ?? [] {
                for version in UInt64(1)...60 {
                    for context in [
                        SealBox.identityContext(id, office, version: version),
                        SealBox.fieldsContext(kind, id, office, version: version),
                    ] {
                        if let plaintext = try? SealBox.open(blob, key: key, context: context) {
                            plaintexts.append(Data(plaintext))
                        }
                    }
                }
            }
            for key in officeKeys[office] ?? [] {
                if let plaintext = try? SealBox.open(blob, key: key, context: SealBox.legacyIdentityContext(id)) {
                    plaintexts.append(Data(plaintext))
                }
            }
        }
        for (id, place, office, blob) in services {
            for key in recordKeys["survivor/\(id)"] ?? [] {
                let context = SealBox.fieldsContext("survivorService", place, office, version: 1)
                if let plaintext = try? SealBox.open(blob, key: key, context: context) {
                    plaintexts.append(Data(plaintext))
                }
            }
        }
        return plaintexts
    }

    static func contains(_ data: Data, _ canary: String) -> Bool {
        data.range(of: Data(canary.utf8)) != nil
    }

    static func fileBytes(_ path: String) -> Data {
        (try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data()
    }

    @Test(
        "after EraseSurvivor the canaries cannot be recovered from the database, WAL, change log or an earlier backup"
    )
    func erasure() async throws {
        let scenario = try await AccountabilityScenario()
        let canary = "CANARY7731"
        let survivor = try await scenario.survivor(canary, key: "erase-1")
        let other = try await scenario.survivor("KEEPER5150", key: "keep-1")
        let backup = scenario.haven.directory.path("backup-before-erasure.sqlite")
        try scenario.backup(to: backup)
        let masterFile = scenario.haven.directory.path("master.key")
        let oldMaster = try MasterKey.load(from: masterFile).key

        // The recovery works: with the key of its time, the backup gives everything up.
        let before = try Self.recoverable(from: [backup], master: oldMaster)
        for suffix in ["NAME", "PHONE", "NOTES", "HOME", "DETAIL"] {
            #expect(before.contains { Self.contains($0, "\(canary)-\(suffix)") }, "\(suffix) recoverable before")
        }

        let reportBefore = try await scenario.call(
            "director-kol",
            MethodCatalog.ReportService.getOfficeReport,
            Self.report()
        )
        var erase = Haven_V1_EraseSurvivorRequest()
        erase.survivorID = survivor.id
        erase.expectedVersion = survivor.version
        erase.reason = "Retention period over (fictional)"
        // A caseworker may not erase; the director may.
        #expect(
            try await scenario.code("worker-kol", MethodCatalog.SurvivorService.eraseSurvivor, erase)
                == .permissionDenied
        )
        let erased = try await scenario.call("director-kol", MethodCatalog.SurvivorService.eraseSurvivor, erase)
        #expect(erased.erasedAtUnixMs > 0)
        #expect(erased.placements.allSatisfy { $0.homeName.isEmpty })
        #expect(erased.serviceCount == 1)
        // Read back: the service stays, its kind counted, its detail gone.
        let reread = try await scenario.call(
            "director-kol",
            MethodCatalog.SurvivorService.getSurvivor,
            .with { $0.survivorID = survivor.id }
        )
        #expect(reread.services.count == 1, "the service kind stays, for statistics")
        #expect(reread.services.allSatisfy { $0.detail.isEmpty && $0.kind != .unspecified })

        // Erasing again, or reading the identity, says it is gone.
        erase.expectedVersion = erased.version
        #expect(
            try await scenario.code("director-kol", MethodCatalog.SurvivorService.eraseSurvivor, erase)
                == .failedPrecondition
        )
        let read = await #expect(throws: HavenError.self) {
            _ = try await scenario.call(
                "director-kol",
                MethodCatalog.SurvivorService.getSurvivor,
                .with {
                    $0.survivorID = survivor.id
                    $0.includeIdentity = true
                }
            )
        }
        #expect(read?.code == .failedPrecondition)

        // The master key file was replaced; the old key exists nowhere.
        let newMaster = try MasterKey.load(from: masterFile).key
        #expect(newMaster != oldMaster)
        #expect(!FileManager.default.fileExists(atPath: masterFile + ".next"))

        // Nothing of the erased survivor opens with the current key, anywhere.
        let current = scenario.haven.directory.path("after-erasure.sqlite")
        try scenario.backup(to: current)
        let after = try Self.recoverable(from: [current, backup, scenario.databasePath], master: newMaster)
        for suffix in ["NAME", "PHONE", "NOTES", "HOME", "DETAIL"] {
            #expect(!after.contains { Self.contains($0, "\(canary)-\(suffix)") }, "\(suffix) recoverable after erasure")
        }
        // … while the other survivor's identity still opens (the recovery is not blind).
        #expect(after.contains { Self.contains($0, "KEEPER5150-NAME") })
        // No plaintext anywhere on disk.
        for path in [scenario.databasePath, scenario.databasePath + "-wal", backup, current] {
            #expect(!Self.contains(Self.fileBytes(path), canary), "\(path)")
        }

        // Statistics still count the survivor; the other survivor reads as before.
        let reportAfter = try await scenario.call(
            "director-kol",
            MethodCatalog.ReportService.getOfficeReport,
            Self.report()
        )
        #expect(reportAfter.survivorsRegistered == reportBefore.survivorsRegistered)
        #expect(reportAfter.servicesDelivered == reportBefore.servicesDelivered)
        let kept = try await scenario.call(
            "director-kol",
            MethodCatalog.SurvivorService.getSurvivor,
            .with {
                $0.survivorID = other.id
                $0.includeIdentity = true
            }
        )
        #expect(kept.identity.legalName == "KEEPER5150-NAME")
        #expect(kept.placements.first?.homeName == "KEEPER5150-HOME")

        // The erasure is in the audit trail, which still verifies.
        let entries = try await scenario.entries(kind: "survivor", id: survivor.id)
        let entry = try #require(entries.last)
        #expect(entry.action == "haven.v1.SurvivorService/EraseSurvivor")
        #expect(entry.principalID == "director-kol")
        #expect(!entry.detail.contains(canary))
        #expect(entry.detail.contains("reason: Retention period over (fictional)"))
        let verdict = try await scenario.verify(scenario.databasePath)
        #expect(verdict.intact, "\(verdict.problem)")
    }

    @Test("a legal hold refuses erasure while a linked case has an accused on bail or an open appeal")
    func legalHold() async throws {
        let scenario = try await AccountabilityScenario()
        let survivor = try await scenario.survivor("HOLD", key: "hold-1")
        var record = try await scenario.caseRecord("HOLD", survivor: survivor, key: "hold-case")
        record = try await scenario.accusedOnBail(record, key: "hold")
        let current = try await scenario.call(
            "director-kol",
            MethodCatalog.SurvivorService.getSurvivor,
            .with { $0.survivorID = survivor.id }
        )
        var erase = Haven_V1_EraseSurvivorRequest()
        erase.survivorID = survivor.id
        erase.expectedVersion = current.version
        erase.reason = "Asked (fictional)"
        let masterBefore = try String(contentsOfFile: scenario.haven.directory.path("master.key"), encoding: .utf8)
        let refused = await #expect(throws: HavenError.self) {
            _ = try await scenario.call("director-kol", MethodCatalog.SurvivorService.eraseSurvivor, erase)
        }
        #expect(refused?.code == .failedPrecondition)
        #expect(refused?.message.contains(record.reference) == true)
        // Refused means unchanged: the identity still opens, no key was rotated.
        let still = try await scenario.call(
            "director-kol",
            MethodCatalog.SurvivorService.getSurvivor,
            .with {
                $0.survivorID = survivor.id
                $0.includeIdentity = true
            }
        )
        #expect(still.identity.legalName == "HOLD-NAME")
        #expect(
            try String(contentsOfFile: scenario.haven.directory.path("master.key"), encoding: .utf8) == masterBefore
        )

        // The accused is acquitted: the prosecution is over, the hold lifts.
        try await scenario.acquit(record, on: AccountabilityScenario.date(2026, 9, 1), key: "hold")
        erase.expectedVersion = try await scenario.call(
            "director-kol",
            MethodCatalog.SurvivorService.getSurvivor,
            .with { $0.survivorID = survivor.id }
        ).version
        let erased = try await scenario.call("director-kol", MethodCatalog.SurvivorService.eraseSurvivor, erase)
        #expect(erased.erasedAtUnixMs > 0)
    }

    static func report() -> Haven_V1_GetOfficeReportRequest {
        var report = Haven_V1_GetOfficeReportRequest()
        report.officeCode = "KOL"
        report.period.firstDay = AccountabilityScenario.date(2026, 1, 1)
        report.period.lastDay = AccountabilityScenario.date(2026, 12, 31)
        return report
    }
}
