import ArgumentParser
import Foundation
import HavenClient
import HavenProtocol
import SwiftProtobuf

/// Accounts and their certificates, through the server (an admin's credentials).
struct Accounts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Creates, lists, shows, changes, disables and enables accounts; issues enrolment codes; revokes certificates.",
        discussion: """
            Through the server, with an admin's credentials; every change is audited. A
            new account gets a one-time enrolment code: give it, with the deployment's
            ca.pem, to the person or organisation, whose machine makes its own key
            (`haven-admin enroll`, or HavenEnrollment in a partner's program). Nobody
            else ever holds that key. Disabling an account or revoking a certificate ends
            its open connections within a second.
            """,
        subcommands: [
            Create.self, List.self, Show.self, Update.self, Disable.self, Enable.self, Enrollment.self, Revoke.self,
        ]
    )

    static func role(_ name: String) throws -> Haven_V1_Role {
        guard let role = CLI.roles[name] else {
            throw ValidationError("role must be one of \(CLI.roles.keys.sorted().joined(separator: ", "))")
        }
        return role
    }

    static func codes(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// Prints an enrolment code and what to do with it.
    static func show(_ enrollment: Haven_V1_Enrollment, invitation: String?) throws {
        CLI.fields([
            ("Enrolment code", enrollment.code), ("For account", enrollment.accountID),
            ("Expires", CLI.date(enrollment.expiresAtUnixMs)),
        ])
        if let invitation {
            say("Invitation written to \(invitation) (the code, the server and ca.pem; send it securely).")
        }
        say(
            """

            On the user's or partner's machine:
              haven-admin enroll \(invitation.map { "--invitation \(($0 as NSString).lastPathComponent)" } ?? "--server HOST:PORT --ca ca.pem --code \(enrollment.code)") --out DIR
            """
        )
    }

    /// Writes an invitation file: what `enroll --invitation` needs, in one file.
    static func writeInvitation(_ enrollment: Haven_V1_Enrollment, server: String, to path: String) throws {
        let object: [String: Any] = [
            "server": server, "code": enrollment.code, "account_id": enrollment.accountID,
            "expires_at_unix_ms": enrollment.expiresAtUnixMs, "ca_certificate_pem": enrollment.caCertificatePem,
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        guard FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: 0o600])
        else {
            throw CLIError.local("cannot write \(path)")
        }
    }

    struct InvitationOption: ParsableArguments {
        @Option(
            help: ArgumentHelp(
                "Also write an invitation file (code, server, ca.pem) for `haven-admin enroll --invitation`.",
                valueName: "file"
            )
        )
        var invitation: String?
        @Option(
            name: .customLong("hours"),
            help: ArgumentHelp("How long the enrolment code works: 1 to 168 hours.", valueName: "hours")
        )
        var hours: UInt32 = 24

        func validate() throws {
            guard (1...168).contains(self.hours) else { throw ValidationError("--hours must be 1 to 168") }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Creates an account and prints its enrolment code.")
        @OptionGroup var server: ServerOptions
        @Option(help: "Account id: 1 to 64 lowercase letters, digits or dashes, e.g. asha-home.") var id: String
        @Option(help: "Display name.") var name: String
        @Option(help: "admin, director, caseworker, partner or auditor.") var role: String
        @Option(help: "Comma-separated office codes (directors, caseworkers).") var offices: String = ""
        @Option(name: .customLong("partner-id"), help: "The partner organisation's id (partners).") var partnerID = ""
        @Option(
            name: .customLong("valid-days"),
            help: "How long its certificates are valid: 1 to 397 days (default 90; partners 30)."
        )
        var validDays: UInt32 = 0
        @OptionGroup var enrolment: InvitationOption

        func validate() throws {
            _ = try Accounts.role(self.role)
            guard self.validDays <= 397 else { throw ValidationError("--valid-days must be 1 to 397") }
        }

        func run() async throws {
            var request = Haven_V1_CreateAccountRequest()
            request.account.id = self.id
            request.account.displayName = self.name
            request.account.role = try Accounts.role(self.role)
            request.account.officeCodes = Accounts.codes(self.offices)
            request.account.partnerID = self.partnerID
            request.enrollmentValidHours = self.enrolment.hours
            request.certificateValidDays = self.validDays
            try await withAdminClient(self.server) { client in
                let created = try await client.accounts.create(request)
                if let path = self.enrolment.invitation {
                    try Accounts.writeInvitation(
                        created.enrollment,
                        server: client.configuration.serverAddress,
                        to: path
                    )
                }
                if self.server.json { return try self.server.print(created) }
                say("Created \(CLI.role(created.account.role)) account '\(created.account.id)'.")
                try Accounts.show(created.enrollment, invitation: self.enrolment.invitation)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lists accounts.")
        @OptionGroup var server: ServerOptions
        @Option(help: "Only this role.") var role: String?

        func validate() throws { if let role { _ = try Accounts.role(role) } }

        func run() async throws {
            try await withAdminClient(self.server) { client in
                var request = Haven_V1_ListAccountsRequest()
                if let role { request.role = try Accounts.role(role) }
                var all = Haven_V1_ListAccountsResponse()
                repeat {
                    let page = try await client.accounts.list(request)
                    all.accounts += page.accounts
                    request.page.pageToken = page.page.nextPageToken
                } while !request.page.pageToken.isEmpty
                if self.server.json { return try self.server.print(all) }
                CLI.table(
                    ["ID", "ROLE", "STATUS", "OFFICES", "PARTNER", "CREATED", "NAME"],
                    all.accounts.map {
                        [
                            $0.id, CLI.role($0.role), $0.enabled ? "enabled" : "DISABLED",
                            $0.officeCodes.joined(separator: ","), $0.partnerID, CLI.date($0.createdAtUnixMs),
                            $0.displayName,
                        ]
                    }
                )
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Shows an account and its certificates.")
        @OptionGroup var server: ServerOptions
        @Option(help: "Account id.") var id: String

        func run() async throws {
            try await withAdminClient(self.server) { client in
                let account = try await client.accounts.get(.with { $0.accountID = self.id })
                if self.server.json { return try self.server.print(account) }
                Accounts.describe(account)
                say("")
                CLI.table(
                    ["SERIAL", "STATE", "ISSUED", "EXPIRES", "HOW", "REVOKED"],
                    account.credentials.map {
                        [
                            $0.serial, Accounts.state($0.state), CLI.date($0.issuedAtUnixMs),
                            CLI.date($0.notValidAfterUnixMs), $0.issuedBy,
                            $0.revokedAtUnixMs == 0 ? "" : "\(CLI.date($0.revokedAtUnixMs)) by \($0.revokedBy)",
                        ]
                    }
                )
            }
        }
    }

    static func describe(_ account: Haven_V1_Account) {
        CLI.fields([
            ("Account", account.id), ("Name", account.displayName), ("Role", CLI.role(account.role)),
            ("Status", account.enabled ? "enabled" : "DISABLED"),
            ("Offices", account.officeCodes.joined(separator: ", ")), ("Partner", account.partnerID),
            ("Created", CLI.date(account.createdAtUnixMs)),
        ])
    }

    static func state(_ state: Haven_V1_CredentialState) -> String {
        switch state {
        case .active: "active"
        case .expired: "expired"
        case .revoked: "REVOKED"
        default: "?"
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Changes an account's name, role, offices or partner (its open connections end)."
        )
        @OptionGroup var server: ServerOptions
        @Option(help: "Account id.") var id: String
        @Option(help: "New display name.") var name: String?
        @Option(help: "New role.") var role: String?
        @Option(help: "New comma-separated office codes (replace the current ones).") var offices: String?
        @Option(name: .customLong("partner-id"), help: "New partner organisation.") var partnerID: String?

        func validate() throws {
            if let role { _ = try Accounts.role(role) }
            guard self.name != nil || self.role != nil || self.offices != nil || self.partnerID != nil else {
                throw ValidationError("nothing to change: give --name, --role, --offices or --partner-id")
            }
        }

        func run() async throws {
            var request = Haven_V1_UpdateAccountRequest()
            request.accountID = self.id
            request.displayName = self.name ?? ""
            if let role { request.role = try Accounts.role(role) }
            if let offices {
                request.changeOffices = true
                request.officeCodes = Accounts.codes(offices)
            }
            if let partnerID {
                request.changePartner = true
                request.partnerID = partnerID
            }
            try await withAdminClient(self.server) { client in
                let account = try await client.accounts.update(request)
                if self.server.json { return try self.server.print(account) }
                Accounts.describe(account)
            }
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Disables an account: its connections end within a second, new ones are refused."
        )
        @OptionGroup var server: ServerOptions
        @Option(help: "Account id.") var id: String
        @Option(help: "Why (kept in the audit trail; no names of survivors).") var reason = ""
        @Flag(help: "Do not ask for confirmation.") var yes = false

        func run() async throws {
            try await CLI.run(json: self.server.json) {
                try CLI.confirm("Disable account '\(self.id)' and end its connections?", yes: self.yes)
            }
            try await withAdminClient(self.server) { client in
                let account = try await client.accounts.disable(
                    .with {
                        $0.accountID = self.id
                        $0.reason = self.reason
                    }
                )
                if self.server.json { return try self.server.print(account) }
                say("Disabled '\(account.id)'.")
            }
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enables a disabled account.")
        @OptionGroup var server: ServerOptions
        @Option(help: "Account id.") var id: String
        @Option(help: "Why (kept in the audit trail).") var reason = ""

        func run() async throws {
            try await withAdminClient(self.server) { client in
                let account = try await client.accounts.enable(
                    .with {
                        $0.accountID = self.id
                        $0.reason = self.reason
                    }
                )
                if self.server.json { return try self.server.print(account) }
                say("Enabled '\(account.id)'.")
            }
        }
    }

    struct Enrollment: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "enrollment",
            abstract: "Issues a new enrolment code for an account (a new machine, a lost key, an expired certificate)."
        )
        @OptionGroup var server: ServerOptions
        @Option(help: "Account id.") var id: String
        @OptionGroup var enrolment: InvitationOption

        func run() async throws {
            try await withAdminClient(self.server) { client in
                let enrollment = try await client.accounts.issueEnrollment(
                    .with {
                        $0.accountID = self.id
                        $0.enrollmentValidHours = self.enrolment.hours
                    }
                )
                if let path = self.enrolment.invitation {
                    try Accounts.writeInvitation(enrollment, server: client.configuration.serverAddress, to: path)
                }
                if self.server.json { return try self.server.print(enrollment) }
                try Accounts.show(enrollment, invitation: self.enrolment.invitation)
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revokes a certificate by serial (see `accounts show`): its connections end within a second."
        )
        @OptionGroup var server: ServerOptions
        @Option(help: "The certificate's serial, hex.") var serial: String
        @Option(help: "Why (kept with the certificate).") var reason = ""
        @Flag(help: "Do not ask for confirmation.") var yes = false

        func run() async throws {
            try await CLI.run(json: self.server.json) {
                try CLI.confirm("Revoke certificate \(self.serial)?", yes: self.yes)
            }
            try await withAdminClient(self.server) { client in
                let credential = try await client.accounts.revokeCredential(
                    .with {
                        $0.serial = self.serial.lowercased()
                        $0.reason = self.reason
                    }
                )
                if self.server.json { return try self.server.print(credential) }
                say("Revoked \(credential.serial) of '\(credential.accountID)'.")
            }
        }
    }
}

extension HavenClientConfiguration {
    /// `host:port` as people write it.
    var serverAddress: String { self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }
}
