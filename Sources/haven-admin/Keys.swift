import ArgumentParser
import Foundation
import HavenClient
import HavenProtocol
import SwiftProtobuf

/// Key rotation, through the server (an admin's credentials).
struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rotates the master key (and office keys) while the server runs.",
        subcommands: [Rotate.self]
    )

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Writes a new master key that re-wraps every office key; --offices also replaces those offices' keys.",
            discussion: """
                The old master key is destroyed: a database backup taken before cannot be
                opened with the new key. Take a new backup (and keep master.key apart from it)
                right after.
                """
        )
        @OptionGroup var server: ServerOptions
        @Option(help: "Comma-separated office codes whose keys to replace too, e.g. KOL,MNL.") var offices = ""
        @Flag(help: "Do not ask for confirmation.") var yes = false

        func validate() throws {
            for code in self.offices.split(separator: ",")
            where !((2...8).contains(code.count) && code.allSatisfy { $0.isASCII && $0.isUppercase }) {
                throw ValidationError("--offices must be office codes (2 to 8 upper-case letters), comma-separated")
            }
        }

        func run() async throws {
            var request = Haven_V1_RotateKeysRequest()
            request.officeCodes = self.offices.split(separator: ",").map(String.init)
            try await CLI.run(json: self.server.json) {
                try CLI.confirm(
                    "Rotate the master key? Database backups taken before will no longer open.",
                    yes: self.yes
                )
            }
            try await withAdminClient(self.server) { client in
                let response = try await client.offices.rotateKeys(request)
                if self.server.json {
                    try self.server.print(response)
                } else {
                    say(
                        "New master key \(response.masterKeyFingerprint); \(response.officesRotated) office keys replaced, \(response.recordKeysRewrapped) record keys re-wrapped. Take a new backup now."
                    )
                }
            }
        }
    }
}

/// Retention, through the server.
struct RetentionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retention",
        abstract: "Shows what the retention job would erase (a dry run).",
        subcommands: [Preview.self]
    )

    struct Preview: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lists what is due for erasure in an office now, and what a legal hold keeps."
        )
        @OptionGroup var server: ServerOptions
        @Option(help: "The office code, e.g. KOL.") var office: String

        func run() async throws {
            try await withAdminClient(self.server) { client in
                let plan = try await client.offices.previewRetention(.with { $0.officeCode = self.office })
                if self.server.json { return try self.server.print(plan) }
                if plan.items.isEmpty { say("Nothing is due in \(self.office).") }
                for item in plan.items {
                    let due = ISO8601DateFormatter().string(
                        from: Date(timeIntervalSince1970: Double(item.dueAtUnixMs) / 1000)
                    )
                    say(
                        "\(item.what)\t\(item.code)\tdue \(due)\t"
                            + (item.held ? "HELD (case \(item.hold))" : "will be erased")
                    )
                }
            }
        }
    }
}
