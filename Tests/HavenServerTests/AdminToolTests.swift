import Foundation
import HavenProtocol
import HavenServer
import HavenTestSupport
import NIOCore
import SwiftProtobuf
import Testing

/// The built `havend` and `haven-admin`, as a new administrator runs them:
/// from nothing to a production deployment with an enrolled partner, on a
/// port that is not 7443, then revocation, renewal, backup and restore, the
/// documented errors and exit codes, and `--json` shapes against the
/// checked-in examples in `Tests/HavenServerTests/Fixtures/cli/`.
@Suite("haven-admin and havend, end to end")
struct AdminToolTests {
    let admin = RepositoryPaths.product("haven-admin")
    let havend = RepositoryPaths.product("havend")

    typealias Server = HavendProcess

    struct Result {
        var output: String
        var error: String
        var status: Int32
        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(self.output.utf8)) as? [String: Any]) ?? [:]
        }
        var errorJSON: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(self.error.utf8)) as? [String: Any]) ?? [:]
        }
    }

    func tool(_ arguments: [String], environment: [String: String] = [:], input: String = "") throws -> Result {
        let result = try run(self.admin, arguments, input: Data(input.utf8), environment: environment)
        return Result(
            output: String(decoding: result.output, as: UTF8.self),
            error: String(decoding: result.error, as: UTF8.self),
            status: result.status
        )
    }

    /// Checks a `--json` output's shape against its checked-in example: the
    /// same keys, recursively. `HAVEN_RECORD_CLI_FIXTURES=1` rewrites the examples.
    func shape(_ output: String, _ fixture: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let url = RepositoryPaths.cliFixtures.appendingPathComponent(fixture + ".json")
        if ProcessInfo.processInfo.environment["HAVEN_RECORD_CLI_FIXTURES"] == "1" {
            let object = try JSONSerialization.jsonObject(with: Data(output.utf8))
            try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]).write(to: url)
        }
        let expected = try JSONSerialization.jsonObject(with: try Data(contentsOf: url))
        let actual = try JSONSerialization.jsonObject(with: Data(output.utf8))
        #expect(Self.keys(actual) == Self.keys(expected), "\(fixture).json", sourceLocation: sourceLocation)
    }

    /// Every key path of a JSON value (arrays: their first element's).
    static func keys(_ value: Any, _ prefix: String = "") -> Set<String> {
        switch value {
        case let object as [String: Any]:
            return object.reduce(into: Set<String>()) { paths, entry in
                let path = prefix.isEmpty ? entry.key : prefix + "." + entry.key
                paths.insert(path)
                paths.formUnion(Self.keys(entry.value, path))
            }
        case let array as [Any]:
            return array.first.map { Self.keys($0, prefix + "[]") } ?? []
        default:
            return []
        }
    }

    @Test(
        "from nothing to a production deployment with an enrolled partner on any port; revoke, renew, back up and restore; every documented error",
        .timed
    )
    func newAdministrator() async throws {
        guard FileManager.default.isExecutableFile(atPath: self.admin.path),
            FileManager.default.isExecutableFile(atPath: self.havend.path)
        else {
            #expect(!runningInCI, "CI builds havend and haven-admin with the tests")
            print("SKIPPED: build havend and haven-admin first (swift build)")
            return
        }
        let home = try TemporaryDirectory("haven-admin-e2e")
        defer { home.remove() }
        let data = home.path("srv-haven")

        // A typo'd data directory is an error, not a new development deployment.
        let typo = try run(self.havend, ["--data-dir", home.path("srv-havn")])
        #expect(typo.status != 0)
        #expect(String(decoding: typo.error, as: UTF8.self).contains("holds no Haven deployment"))
        #expect(!FileManager.default.fileExists(atPath: home.path("srv-havn")))

        // Local problems name the path and exit 5, never 1 (which means "not intact").
        let missing = try self.tool(["audit", "verify", "--data-dir", home.path("srv-havn")])
        #expect(missing.status == 5 && missing.error.contains("holds no deployment"), "\(missing.error)")
        let noFile = try self.tool([
            "restore", "--from", home.path("none.hvbk"), "--key", home.path("none.key"), "--data-dir", home.path("r"),
        ])
        #expect(noFile.status == 5 && noFile.error.contains(home.path("none.key")), "\(noFile.error)")
        let unwritable = try self.tool(["init", "--data-dir", "/proc/haven-cannot-be-here"])
        #expect(
            unwritable.status == 5 && unwritable.error.contains("cannot create /proc/haven-cannot-be-here"),
            "\(unwritable.error)"
        )

        // 1. init: the first admin's enrolment code, no private key of anyone's written.
        let initialized = try self.tool(["init", "--data-dir", data, "--json"])
        #expect(initialized.status == 0, "\(initialized.error)")
        try self.shape(initialized.output, "init")
        let code = try #require((initialized.json["enrollment"] as? [String: Any])?["code"] as? String)
        #expect(!FileManager.default.fileExists(atPath: data + "/credentials"), "no bundles on the server")

        // 2. The backup key, and havend on a port that is not 7443.
        let keyFile = home.path("backup.key")
        let keygen = try self.tool(["backup", "keygen", "--out", keyFile, "--json"])
        let publicKey = try #require(keygen.json["backup_public_key"] as? String)
        let server = try Server(
            self.havend,
            arguments: ["--data-dir", data, "--set", "listen_port=0", "--set", "backup_public_key=\(publicKey)"]
        )
        let address = "127.0.0.1:\(server.port)"
        // The real havend serves its operations listener where it said it would, and is ready.
        #expect(server.operationsPort > 0)
        let ready = try await HTTPProbe.request("http://127.0.0.1:\(server.operationsPort)", "/health/ready")
        #expect(ready.status == 200 && ready.body.contains(#""status":"ready""#))
        let second = try run(self.havend, ["--data-dir", data, "--set", "listen_port=0"])
        #expect(
            second.status != 0 && String(decoding: second.error, as: UTF8.self).contains("in use by another process")
        )
        // Another deployment on a port already taken: an error, and no "listening" said first.
        let other = home.path("other")
        _ = try self.tool(["init", "--data-dir", other])
        let taken = try run(
            self.havend,
            ["--data-dir", other, "--set", "listen_port=\(server.port)", "--set", "ops_listen_port=0"]
        )
        #expect(taken.status != 0)
        #expect(!String(decoding: taken.output, as: UTF8.self).contains("listening"))
        #expect(String(decoding: taken.error, as: UTF8.self).contains("cannot listen on 127.0.0.1:\(server.port)"))

        // 3. The admin enrols from "their machine"; later commands need no --server.
        let adminBundle = home.path("admin-bundle")
        let enrolled = try self.tool([
            "enroll", "--server", address, "--ca", data + "/tls/ca.pem", "--code", code, "--out", adminBundle, "--json",
        ])
        #expect(enrolled.status == 0, "\(enrolled.error)")
        try self.shape(enrolled.output, "enroll")
        let asAdmin = ["HAVEN_CREDENTIALS": adminBundle]
        let office = try self.tool(
            [
                "offices", "create", "--code", "KOL", "--name", "Kolkata field office", "--city", "Kolkata",
                "--country", "IN", "--time-zone", "Asia/Kolkata",
            ],
            environment: asAdmin
        )
        #expect(office.status == 0, "\(office.error)")
        #expect(office.output.contains("Office:") && office.output.contains("Asia/Kolkata"))
        let badCountry = try self.tool(
            [
                "offices", "create", "--code", "MUM", "--name", "Mumbai", "--city", "Mumbai", "--country", "XX",
                "--time-zone", "Asia/Kolkata", "--json",
            ],
            environment: asAdmin
        )
        #expect(badCountry.status == 2, "refused by the server: exit 2")
        #expect((badCountry.errorJSON["error"] as? [String: Any])?["code"] as? String == "INVALID_ARGUMENT")
        try self.shape(badCountry.error, "error")

        let partner = try self.tool(
            [
                "partners", "register", "--name", "Asha Aftercare Home (fictional)", "--kind", "aftercare-home",
                "--offices", "KOL", "--json",
            ],
            environment: asAdmin
        )
        let partnerID = try #require(partner.json["id"] as? String)
        let unknownPartner = try self.tool(
            [
                "accounts", "create", "--id", "bogus", "--name", "Bogus", "--role", "partner", "--partner-id",
                "ptn_bogus",
            ],
            environment: asAdmin
        )
        #expect(
            unknownPartner.status == 2 && unknownPartner.error.contains("account.partner_id"),
            "\(unknownPartner.error)"
        )

        // 4. The partner's account, an invitation file, and the partner's machine enrols.
        let invitation = home.path("asha.invite")
        let created = try self.tool(
            [
                "accounts", "create", "--id", "asha-home", "--name", "Asha Home (fictional)", "--role", "partner",
                "--partner-id", partnerID, "--invitation", invitation, "--json",
            ],
            environment: asAdmin
        )
        #expect(created.status == 0, "\(created.error)")
        try self.shape(created.output, "accounts-create")
        let partnerBundle = home.path("asha-bundle")
        let partnerEnrolled = try self.tool(["enroll", "--invitation", invitation, "--out", partnerBundle])
        #expect(partnerEnrolled.status == 0, "\(partnerEnrolled.error)")
        let listed = try self.tool(["accounts", "list", "--json"], environment: asAdmin)
        try self.shape(listed.output, "accounts-list")
        let table = try self.tool(["accounts", "list"], environment: asAdmin)
        #expect(table.output.hasPrefix("ID ") && table.output.contains("asha-home  partner"), "\(table.output)")

        // 5. The partner's program connects (its own key, the bundle's files).
        func partnerCredentials() throws -> TestCredentials {
            TestCredentials(
                caPEM: try String(contentsOfFile: partnerBundle + "/ca.pem", encoding: .utf8),
                certificatePEM: try String(contentsOfFile: partnerBundle + "/client.pem", encoding: .utf8),
                privateKeyPEM: try String(contentsOfFile: partnerBundle + "/client-key.pem", encoding: .utf8)
            )
        }
        let program = try await RawConnection.connect(port: server.port, credentials: try partnerCredentials())
        try await program.hello()
        #expect(try await program.unary(MethodCatalog.SessionService.whoAmI, .init(), id: 1).partnerID == partnerID)

        // 6. Revoke its certificate: the live connection ends within a second; it is refused after.
        let shown = try self.tool(["accounts", "show", "--id", "asha-home", "--json"], environment: asAdmin)
        try self.shape(shown.output, "accounts-show")
        let serial = try #require(((shown.json["credentials"] as? [[String: Any]])?.first)?["serial"] as? String)
        let noConfirmation = try self.tool(["accounts", "revoke", "--serial", serial], environment: asAdmin)
        #expect(
            noConfirmation.status == 64 && noConfirmation.error.contains("--yes"),
            "asks; refuses without a terminal"
        )
        let revoked = try self.tool(
            ["accounts", "revoke", "--serial", serial, "--reason", "laptop lost (fictional)", "--yes"],
            environment: asAdmin
        )
        #expect(revoked.status == 0, "\(revoked.error)")
        let revokedAt = ContinuousClock.now
        var goAway: Haven_V1_GoAway?
        while let envelope = try? await program.next(timeout: .seconds(3)) {
            if case .goAway(let away) = envelope.kind {
                goAway = away
                break
            }
        }
        #expect(ContinuousClock.now - revokedAt < SessionCutoffTests.bound, "within about a second of the revocation")
        #expect(goAway?.message.contains("revoked") == true)
        let whoami = try self.tool(["whoami"], environment: ["HAVEN_CREDENTIALS": partnerBundle])
        #expect(whoami.status == 4, "refused: exit 4, not retried")
        #expect(whoami.error.contains(address) && whoami.error.contains("revoked"), "\(whoami.error)")

        // 7. Renewal before expiry: a new key and certificate in the same bundle.
        let before = try self.tool(["credentials", "show", "--json"], environment: asAdmin).json["serial"] as? String
        let renewed = try self.tool(["credentials", "renew"], environment: asAdmin)
        #expect(renewed.status == 0, "\(renewed.error)")
        let after = try self.tool(["credentials", "show", "--json"], environment: asAdmin).json["serial"] as? String
        #expect(before != nil && after != nil && before != after)
        #expect(try self.tool(["whoami"], environment: asAdmin).status == 0, "the renewed bundle works")

        // Reports: a table, CSV for spreadsheets, JSON.
        let year = ["--office", "KOL", "--from", "2026-01-01", "--to", "2026-12-31"]
        let report = try self.tool(["reports"] + year, environment: asAdmin)
        #expect(
            report.status == 0 && report.output.hasPrefix("FIGURE") && report.output.contains("cases opened"),
            "\(report.error)"
        )
        let csv = try self.tool(["reports", "--csv"] + year, environment: asAdmin)
        #expect(csv.output.hasPrefix("figure,value\noffice,KOL\n"), "\(csv.output)")
        let badDate = try self.tool(
            ["reports", "--office", "KOL", "--from", "2026", "--to", "2026-12-31"],
            environment: asAdmin
        )
        #expect(badDate.status == 64 && badDate.error.contains("--from must be YYYY-MM-DD"))

        // 8. Status, and an online backup of the running server.
        let status = try self.tool(["status", "--json"], environment: asAdmin)
        try self.shape(status.output, "status")
        let backupFile = home.path("haven.hvbk")
        let backup = try self.tool(["backup", "create", "--out", backupFile, "--json"], environment: asAdmin)
        #expect(backup.status == 0, "\(backup.error)")
        try self.shape(backup.output, "backup-create")
        let offices = try self.tool(["offices", "list", "--json"], environment: asAdmin).output
        let partners = try self.tool(["partners", "list", "--json"], environment: asAdmin).output
        let accounts = try self.tool(["accounts", "list", "--json"], environment: asAdmin).output
        #expect(server.stop() == 0, "SIGTERM: a clean exit")

        // Errors with the server down, and on a wrong port: exit 3 naming the address and the cause.
        let down = try self.tool(["whoami", "--server", address], environment: asAdmin)
        #expect(
            down.status == 3 && down.error.contains(address) && down.error.contains("connection refused"),
            "\(down.error)"
        )
        let noCredentials = try self.tool(["accounts", "list"])
        #expect(noCredentials.status == 64 && noCredentials.error.contains("HAVEN_CREDENTIALS"))

        // 9. Restore on a fresh directory: everything identical.
        let restoredData = home.path("new-machine")
        let wrongKey = home.path("other.key")
        _ = try self.tool(["backup", "keygen", "--out", wrongKey])
        let refused = try self.tool(["restore", "--from", backupFile, "--key", wrongKey, "--data-dir", restoredData])
        #expect(refused.status == 1 && !FileManager.default.fileExists(atPath: restoredData), "\(refused.error)")
        let restore = try self.tool(["restore", "--from", backupFile, "--key", keyFile, "--data-dir", restoredData])
        #expect(restore.status == 0, "\(restore.error)")
        #expect(restore.output.contains("audit chain of"))
        let restored = try Server(self.havend, arguments: ["--data-dir", restoredData, "--set", "listen_port=0"])
        let restoredAddress = ["--server", "127.0.0.1:\(restored.port)"]
        #expect(try self.tool(["offices", "list", "--json"] + restoredAddress, environment: asAdmin).output == offices)
        #expect(
            try self.tool(["partners", "list", "--json"] + restoredAddress, environment: asAdmin).output == partners
        )
        #expect(
            try self.tool(["accounts", "list", "--json"] + restoredAddress, environment: asAdmin).output == accounts
        )
        let verify = try self.tool(["audit", "verify", "--data-dir", restoredData])
        #expect(verify.status == 0, "\(verify.output)\(verify.error)")
        #expect(restored.stop() == 0)
    }

    @Test("demo loads the fictional dataset into a development deployment once, and the reports count it")
    func demo() async throws {
        guard FileManager.default.isExecutableFile(atPath: self.admin.path),
            FileManager.default.isExecutableFile(atPath: self.havend.path)
        else {
            #expect(!runningInCI, "CI builds havend and haven-admin with the tests")
            return
        }
        let home = try TemporaryDirectory("haven-admin-demo")
        defer { home.remove() }
        let data = home.path("dev")
        let server = try Server(
            self.havend,
            arguments: ["--data-dir", data, "--create-development", "--set", "listen_port=0"]
        )
        let environment = [
            "HAVEN_CREDENTIALS": data + "/credentials/admin", "HAVEN_SERVER": "127.0.0.1:\(server.port)",
        ]
        let loaded = try self.tool(["demo", "--out", home.path("director"), "--json"], environment: environment)
        #expect(loaded.status == 0, "\(loaded.error)")
        #expect(loaded.json["survivors"] as? Int == 14 && loaded.json["cases"] as? Int == 4, "\(loaded.output)")
        let manila = try self.tool(
            ["reports", "--office", "MNL", "--from", "2026-01-01", "--to", "2026-12-31", "--json"],
            environment: environment
        ).json
        #expect(manila["people_rescued"] as? Int == 7 && manila["minors_rescued"] as? Int == 4, "\(manila)")
        let mumbai = try self.tool(
            ["reports", "--office", "MUM", "--from", "2026-01-01", "--to", "2026-12-31", "--json"],
            environment: environment
        ).json
        #expect(mumbai["convictions"] as? Int == 1 && mumbai["survivors_registered"] as? Int == 3, "\(mumbai)")
        let again = try self.tool(["demo", "--out", home.path("director2")], environment: environment)
        #expect(again.status == 64 && again.error.contains("loaded already"))
        #expect(server.stop() == 0)
    }
}
