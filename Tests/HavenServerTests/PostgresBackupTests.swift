import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import NIOCore
import SwiftProtobuf
import Testing

/// A deployment on PostgreSQL from its first day (`haven-admin init
/// --storage`), and its online backups: one snapshot of every table, carried
/// in the backup as the SQLite deployment's database is, restored into a new
/// PostgreSQL database or into SQLite.
@Suite(
    "Deployments on PostgreSQL: init, backup and restore",
    .serialized,
    .heavy,
    .enabled(if: TestPostgres.isEnabled, TestPostgres.skipped)
)
struct PostgresBackupTests {
    @Test(
        "init straight into a new PostgreSQL database: the first admin and its enrolment code there, the chain verifying, haven.conf naming it, no SQLite file; a database that is not new is refused and leaves no directory"
    )
    func initialize() async throws {
        let machine = try TemporaryDirectory("haven-pg-init")
        defer { machine.remove() }
        let (location, drop) = try await TestPostgres.freshDatabase()
        do {
            let directory = DataDirectory(machine.url.appendingPathComponent("data"))
            let report = try await directory.initialize(storage: location, recordInConfiguration: true)
            #expect(report.database == location.redacted)
            #expect(!FileManager.default.fileExists(atPath: directory.databaseFile))
            #expect(FileManager.default.fileExists(atPath: directory.masterKeyFile))
            let text = try String(contentsOfFile: directory.configurationFile, encoding: .utf8)
            let configuration = try ServerConfiguration.load(fileText: text)
            #expect(configuration.postgres?.redacted == location.redacted)
            let mode = try FileManager.default.attributesOfItem(atPath: directory.configurationFile)[.posixPermissions]
            #expect((mode as? NSNumber)?.intValue == 0o600, "the password is in it")
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: machine.path("")).filter { $0.contains(".init-") }
                    .isEmpty
            )

            let code = try #require(report.adminEnrollment?.code)
            let custodian = try KeyCustodian.load(masterKeyFile: directory.masterKeyFile)
            let store = try await PostgresStore.open(location, keys: custodian.keys)
            try await store.whileRunning {
                let admin = try await store.read { try $0.account(id: "admin") }
                #expect(admin?.role == .admin)
                let enrollment = try await store.read { try $0.enrollment(codeHash: EnrollmentCode.hash(code)) }
                #expect(enrollment?.accountID == "admin")
                let verdict = try await BackupTests.verdict(store, signedIn: directory)
                #expect(verdict.intact && verdict.entries >= 2, "\(verdict.problem)")
            }

            // The same database again: not new. Nothing placed, nothing written.
            let entries = try await TestPostgres.count(location, "SELECT COUNT(*) FROM audit")
            let second = DataDirectory(machine.url.appendingPathComponent("second"))
            let refused = await #expect(throws: HavenError.self) {
                try await second.initialize(storage: location, recordInConfiguration: false)
            }
            #expect(refused?.code == .failedPrecondition)
            #expect(refused?.message.contains("new database") == true)
            #expect(!FileManager.default.fileExists(atPath: second.root.path))
            #expect(try await TestPostgres.count(location, "SELECT COUNT(*) FROM audit") == entries)
            // A directory that is not empty: refused before anything is made.
            let used = await #expect(throws: HavenError.self) {
                try await directory.initialize(storage: location, recordInConfiguration: false)
            }
            #expect(used?.code == .failedPrecondition)
        } catch {
            await drop()
            throw error
        }
        await drop()
    }

    @Test(
        "haven-admin init --storage: a deployment in a new database (no SQLite file, haven.conf naming it, the chain verifying through audit verify); a database that is not new, a remote host without TLS and a bad URL are refused with clear errors that never repeat the password"
    )
    func initThroughTheTool() async throws {
        let tool = AdminToolTests()
        let machine = try TemporaryDirectory("haven-pg-init-tool")
        defer { machine.remove() }
        let (location, drop) = try await TestPostgres.freshDatabase()
        do {
            let password = try #require(location.password)
            let data = machine.path("data")
            let created = try tool.tool(["init", "--data-dir", data, "--storage", location.url, "--json"])
            #expect(created.status == 0, "\(created.error)")
            #expect((created.json["account"] as? [String: Any])?["id"] as? String == "admin")
            #expect(!FileManager.default.fileExists(atPath: data + "/haven.sqlite"))
            #expect(!created.output.contains(password) && !created.error.contains(password))
            let verified = try tool.tool(["audit", "verify", "--data-dir", data])
            #expect(verified.status == 0 && verified.output.contains("intact"), "\(verified.output)\(verified.error)")

            let again = try tool.tool(["init", "--data-dir", machine.path("again"), "--storage", location.url])
            #expect(again.status == 5 && again.error.contains("new database"), "\(again.error)")
            #expect(!again.error.contains(password))
            #expect(!FileManager.default.fileExists(atPath: machine.path("again")))

            let remote = try tool.tool([
                "init", "--data-dir", machine.path("remote"), "--storage",
                "postgres://haven:\(password)@db.example.org/haven?sslmode=disable",
            ])
            #expect(remote.status == 64 && remote.error.contains("loopback"), "\(remote.error)")
            #expect(!remote.error.contains(password))
            let malformed = try tool.tool(["init", "--data-dir", machine.path("bad"), "--storage", "mysql://x"])
            #expect(malformed.status == 64 && malformed.error.contains("storage"), "\(malformed.error)")
            let fromEnvironment = try tool.tool(
                ["init", "--data-dir", machine.path("env")],
                environment: ["HAVEN_STORAGE": "postgres://haven@db.example.org:5432/haven?sslmode=disable"]
            )
            #expect(fromEnvironment.status == 64, "HAVEN_STORAGE is followed, and checked, too")
        } catch {
            await drop()
            throw error
        }
        await drop()
    }

    @Test(
        "an online backup of a server on PostgreSQL restores into a new PostgreSQL database (records as at the backup, chain verified there, no SQLite file left) and into SQLite; a database that is not new is refused and nothing is written"
    )
    func roundTrip() async throws {
        let key = BackupKey()
        let deployment = try TestDeployment()
        // Issued (and registered) before the copy: the restored servers know them too.
        let admin = try deployment.credentials(for: "admin")
        let (original, dropOriginal) = try await TestPostgres.freshDatabase()
        let (restoredDatabase, dropRestored) = try await TestPostgres.freshDatabase()
        let machine = try TemporaryDirectory("haven-pg-restore")
        defer { machine.remove() }
        do {
            try await Self.copy(deployment, into: original)
            let server = try await deployment.start {
                $0.storage = original.url
                $0.backupPublicKey = key.publicKeyBase64
            }
            let (file, summary): ([UInt8], Haven_V1_BackupSummary)
            do {
                let connection = try await RawConnection.connect(port: server.port, credentials: admin)
                try await connection.hello()
                try await CredentialTests.office("KOL", on: connection, callID: 1)
                _ = try await CredentialTests.createCaseworker("field-worker", on: connection, callID: 3)
                (file, summary) = try await BackupTests.backup(connection, id: 5)
                _ = try await CredentialTests.createCaseworker("later-worker", on: connection, callID: 7)
                let status = try await connection.unary(MethodCatalog.OperationsService.getServerStatus, .init(), id: 9)
                #expect(status.lastBackupSha256 == summary.sha256 && status.lastBackupAtUnixMs > 0)
                #expect(status.databaseBytes > 0, "pg_database_size")
                await connection.close()
            } catch {
                try? await server.stop()
                throw error
            }
            try await server.stop()
            #expect(summary.files.contains { $0.path == "haven.sqlite" && $0.bytes > 0 })
            let backupFile = machine.path("haven.hvbk")
            try Data(file).write(to: URL(fileURLWithPath: backupFile))
            let originalEntries = try await TestPostgres.count(original, "SELECT COUNT(*) FROM audit")

            // Into the database the backup was taken from (not new): refused, nothing written or placed.
            let used = DataDirectory(machine.url.appendingPathComponent("used"))
            let refused = await #expect(throws: HavenError.self) {
                try await BackupRestore.restore(
                    file: backupFile,
                    key: key,
                    target: used,
                    replace: false,
                    operatorID: "test",
                    now: 2,
                    environment: ["HAVEN_STORAGE": original.url]
                )
            }
            #expect(refused?.code == .failedPrecondition)
            #expect(refused?.message.contains("new database") == true)
            #expect(refused.map { "\($0)".contains(original.password ?? "\u{0}") } == false, "no password in the error")
            #expect(!FileManager.default.fileExists(atPath: used.root.path))
            #expect(try await TestPostgres.count(original, "SELECT COUNT(*) FROM audit") == originalEntries)

            // Into a new PostgreSQL database, as HAVEN_STORAGE names it.
            let target = DataDirectory(machine.url.appendingPathComponent("data"))
            let report = try await BackupRestore.restore(
                file: backupFile,
                key: key,
                target: target,
                replace: false,
                operatorID: "test",
                now: 3,
                environment: ["HAVEN_STORAGE": restoredDatabase.url]
            )
            #expect(report.verdict.intact && report.verdict.entries == summary.auditEntries)
            #expect(report.database == restoredDatabase.redacted)
            #expect(!FileManager.default.fileExists(atPath: target.databaseFile), "the records live in PostgreSQL only")
            #expect(FileManager.default.fileExists(atPath: target.masterKeyFile))
            #expect(
                try await TestPostgres.count(restoredDatabase, "SELECT COUNT(*) FROM audit")
                    == Int64(summary.auditEntries) + 2,
                "the backup's trail, store.restore and store.copy"
            )
            let restored = try await deployment.start(on: target) { $0.storage = restoredDatabase.url }
            do {
                let connection = try await RawConnection.connect(port: restored.port, credentials: admin)
                try await connection.hello()
                let accounts = try await connection.unary(MethodCatalog.AccountService.listAccounts, .init(), id: 1)
                #expect(accounts.accounts.contains { $0.id == "field-worker" })
                #expect(!accounts.accounts.contains { $0.id == "later-worker" }, "as at the backup")
                let office = try await connection.unary(
                    MethodCatalog.OfficeService.getOffice,
                    .with { $0.code = "KOL" },
                    id: 3
                )
                #expect(office.name == "Fictional KOL")
                let verdict = try await BackupTests.verdict(restored.store, signedIn: target)
                #expect(verdict.intact, "\(verdict.problem)")
                let actions = try await restored.store.read { tx in
                    var query = AuditQuery(limit: 2)
                    query.newestFirst = true
                    return try tx.auditEntries(query).map(\.action)
                }
                #expect(actions == ["store.copy", "store.restore"])
                await connection.close()
            } catch {
                try? await restored.stop()
                throw error
            }
            try await restored.stop()

            // The same backup into SQLite, as the backed-up haven.conf says.
            let embedded = DataDirectory(machine.url.appendingPathComponent("embedded"))
            let sqliteReport = try await BackupRestore.restore(
                file: backupFile,
                key: key,
                target: embedded,
                replace: false,
                operatorID: "test",
                now: 4,
                environment: [:]
            )
            #expect(sqliteReport.database == "haven.sqlite")
            let custodian = try KeyCustodian.load(masterKeyFile: embedded.masterKeyFile)
            let store = try SQLiteStore(path: embedded.databaseFile, keys: custodian.keys)
            let ids = try await store.read { tx in try tx.accounts(after: "", role: nil, limit: 100).map(\.id) }
            #expect(ids.contains("field-worker") && !ids.contains("later-worker"))
            #expect(try store.integrityCheck() == "ok")
            try store.close()
        } catch {
            await dropOriginal()
            await dropRestored()
            throw error
        }
        await dropOriginal()
        await dropRestored()
    }

    /// The deployment's SQLite database copied into a new PostgreSQL database.
    static func copy(_ deployment: TestDeployment, into location: PostgresLocation) async throws {
        _ = try await deployment.dataDirectory.copyDatabase(into: location, principalID: "test", atUnixMs: 1)
    }
}
