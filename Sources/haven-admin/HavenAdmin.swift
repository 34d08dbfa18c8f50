import ArgumentParser
import Foundation
import HavenProtocol
import HavenServer

/// `haven-admin`: administers a Haven deployment.
@main
struct HavenAdmin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "haven-admin",
        abstract: "Administers a Haven deployment.",
        discussion: """
            Commands that go through the server (accounts, offices, partners, keys,
            retention, audit, whoami, credentials) need a credentials bundle — an admin's
            (audit: an auditor's) — from --credentials DIR or $HAVEN_CREDENTIALS; the server
            address comes from --server, $HAVEN_SERVER, or the bundle (written by `enroll`).
            Commands on the data directory itself (init, certs; audit verify --data-dir)
            run on the machine that holds it.

            Every command takes --json: one JSON object on standard output; errors go to
            standard error ({"error": {"code", "message", "source"}} with --json).
            Exit codes: 0 done; 1 audit chain not intact; 2 refused by the server;
            3 server unreachable; 4 not authenticated or not allowed; 5 a local file
            problem; 64 wrong usage.
            """,
        version: HavenRelease.version,
        subcommands: [
            Init.self, Enroll.self, Credentials.self, Certs.self, Accounts.self, Offices.self, Partners.self,
            Status.self, Reports.self, Demo.self, Backup.self, Restore.self, Audit.self, Keys.self,
            RetentionCommand.self, StorageCommand.self,
            WhoAmI.self,
            Methods.self,
        ]
    )
}

/// Writes a line to standard output.
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

/// Lists the protocol's methods.
struct Methods: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Lists every method of the Haven protocol.")

    @Flag(help: "Print JSON for scripts.") var json = false

    func run() throws {
        if self.json {
            let entries = MethodCatalog.all.map {
                [
                    "method": $0.fullName, "request": $0.requestType, "response": $0.responseType,
                    "kind": $0.kind.rawValue,
                ]
            }
            let data = try JSONSerialization.data(withJSONObject: ["methods": entries], options: [.sortedKeys])
            say(String(decoding: data, as: UTF8.self))
        } else {
            for method in MethodCatalog.all { say(method.description) }
        }
    }
}
