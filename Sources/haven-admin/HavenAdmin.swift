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
            Commands that go through the server (offices, partners, keys, retention, audit, whoami) need an admin's (audit: an auditor's)
            credentials bundle: --credentials DIR (ca.pem, client.pem, client-key.pem).
            Commands on the data directory itself (init, accounts) work with the server
            stopped or running, on the machine that holds the data directory.
            """,
        version: HavenRelease.version,
        subcommands: [
            Init.self, Accounts.self, Offices.self, Partners.self, Audit.self, Keys.self, RetentionCommand.self,
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
            let data = try JSONSerialization.data(withJSONObject: entries, options: [.prettyPrinted, .sortedKeys])
            say(String(decoding: data, as: UTF8.self))
        } else {
            for method in MethodCatalog.all { say(method.description) }
        }
    }
}
