import ArgumentParser
import HavenClient
import HavenProtocol
import SwiftProtobuf

/// Field offices, through the server.
struct Offices: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Creates, lists, shows, changes and closes field offices.",
        subcommands: [Create.self, List.self, Show.self, Update.self, Close.self]
    )

    static func describe(_ office: Haven_V1_Office) {
        CLI.fields([
            ("Office", office.code), ("Name", office.name), ("City", office.city), ("Country", office.country),
            ("Time zone", office.timeZone), ("Status", Self.status(office.status)), ("Version", "\(office.version)"),
            ("Created", CLI.date(office.createdAtUnixMs)),
        ])
    }

    static func status(_ status: Haven_V1_OfficeStatus) -> String {
        switch status {
        case .active: "active"
        case .closed: "CLOSED"
        default: "?"
        }
    }

    static func validateCode(_ code: String) throws {
        guard (2...8).contains(code.count), code.allSatisfy({ $0.isASCII && $0.isUppercase && $0.isLetter }) else {
            throw ValidationError("--code must be 2 to 8 upper-case letters, e.g. KOL")
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Creates an office.")
        @OptionGroup var server: ServerOptions
        @Option(help: "Office code: 2 to 8 upper-case letters, e.g. KOL.") var code: String
        @Option(help: "Display name.") var name: String
        @Option(help: "City.") var city: String
        @Option(help: "ISO 3166-1 alpha-2 country code, e.g. IN.") var country: String
        @Option(name: .customLong("time-zone"), help: "IANA time zone, e.g. Asia/Kolkata.") var timeZone: String

        func validate() throws { try Offices.validateCode(self.code) }

        func run() async throws {
            var request = Haven_V1_CreateOfficeRequest()
            request.office.code = self.code
            request.office.name = self.name
            request.office.city = self.city
            request.office.country = self.country
            request.office.timeZone = self.timeZone
            try await withAdminClient(self.server) { client in
                let office = try await client.offices.create(request)
                if self.server.json { return try self.server.print(office) }
                Offices.describe(office)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lists offices.")
        @OptionGroup var server: ServerOptions

        func run() async throws {
            try await withAdminClient(self.server) { client in
                var request = Haven_V1_ListOfficesRequest()
                var all = Haven_V1_ListOfficesResponse()
                repeat {
                    let page = try await client.offices.list(request)
                    all.offices += page.offices
                    request.page.pageToken = page.page.nextPageToken
                } while !request.page.pageToken.isEmpty
                if self.server.json { return try self.server.print(all) }
                CLI.table(
                    ["CODE", "STATUS", "CITY", "COUNTRY", "TIME ZONE", "VERSION", "NAME"],
                    all.offices.map {
                        [
                            $0.code, Offices.status($0.status), $0.city, $0.country, $0.timeZone, "\($0.version)",
                            $0.name,
                        ]
                    }
                )
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Shows an office.")
        @OptionGroup var server: ServerOptions
        @Option(help: "Office code.") var code: String

        func run() async throws {
            try await withAdminClient(self.server) { client in
                let office = try await client.offices.get(.with { $0.code = self.code })
                if self.server.json { return try self.server.print(office) }
                Offices.describe(office)
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Renames or moves an office (its code and country never change; close it and create another)."
        )
        @OptionGroup var server: ServerOptions
        @Option(help: "Office code.") var code: String
        @Option(help: "New display name.") var name: String?
        @Option(help: "New city.") var city: String?
        @Option(name: .customLong("time-zone"), help: "New IANA time zone.") var timeZone: String?

        func validate() throws {
            guard self.name != nil || self.city != nil || self.timeZone != nil else {
                throw ValidationError("nothing to change: give --name, --city or --time-zone")
            }
        }

        func run() async throws {
            try await withAdminClient(self.server) { client in
                let current = try await client.offices.get(.with { $0.code = self.code })
                var request = Haven_V1_UpdateOfficeRequest()
                request.code = self.code
                request.expectedVersion = current.version
                request.name = self.name ?? ""
                request.city = self.city ?? ""
                request.timeZone = self.timeZone ?? ""
                let office = try await client.offices.update(request)
                if self.server.json { return try self.server.print(office) }
                Offices.describe(office)
            }
        }
    }

    struct Close: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Closes an office: its records stay readable, nothing new opens there (refused while cases are open)."
        )
        @OptionGroup var server: ServerOptions
        @Option(help: "Office code.") var code: String
        @Flag(help: "Do not ask for confirmation.") var yes = false

        func run() async throws {
            try await CLI.run(json: self.server.json) {
                try CLI.confirm("Close office \(self.code)?", yes: self.yes)
            }
            try await withAdminClient(self.server) { client in
                let current = try await client.offices.get(.with { $0.code = self.code })
                let office = try await client.offices.close(
                    .with {
                        $0.code = self.code
                        $0.expectedVersion = current.version
                    }
                )
                if self.server.json { return try self.server.print(office) }
                say("Closed \(office.code).")
            }
        }
    }
}

/// Partner organisations, through the server.
struct Partners: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Registers, lists, shows, changes, deactivates and reactivates partner organisations.",
        subcommands: [Register.self, List.self, Show.self, Update.self, Deactivate.self, Reactivate.self]
    )

    static let kinds: [String: Haven_V1_PartnerKind] = [
        "police-unit": .policeUnit, "aftercare-home": .aftercareHome, "government-agency": .governmentAgency,
        "ngo": .ngo, "legal-aid": .legalAid, "medical": .medical, "training-provider": .trainingProvider,
        "other": .other,
    ]

    static func kind(_ kind: Haven_V1_PartnerKind) -> String { Self.kinds.first { $0.value == kind }?.key ?? "?" }

    static func describe(_ partner: Haven_V1_PartnerOrganisation) {
        CLI.fields([
            ("Partner", partner.id), ("Name", partner.name), ("Kind", Self.kind(partner.kind)),
            ("Status", partner.active ? "active" : "DEACTIVATED"),
            ("Offices", partner.officeCodes.joined(separator: ", ")),
            ("Contact", partner.contact), ("Version", "\(partner.version)"),
            ("Registered", CLI.date(partner.createdAtUnixMs)),
        ])
    }

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Registers a partner organisation and prints its id.")
        @OptionGroup var server: ServerOptions
        @Option(help: "Its name.") var name: String
        @Option(
            help: "police-unit, aftercare-home, government-agency, ngo, legal-aid, medical, training-provider or other."
        )
        var kind: String
        @Option(help: "Comma-separated office codes it works with.") var offices: String
        @Option(help: "The organisation's contact (an office e-mail or phone).") var contact = ""

        func validate() throws {
            guard Partners.kinds[self.kind] != nil else {
                throw ValidationError("--kind must be one of \(Partners.kinds.keys.sorted().joined(separator: ", "))")
            }
        }

        func run() async throws {
            var request = Haven_V1_RegisterPartnerRequest()
            request.partner.name = self.name
            request.partner.kind = Partners.kinds[self.kind]!
            request.partner.officeCodes = Accounts.codes(self.offices)
            request.partner.contact = self.contact
            try await withAdminClient(self.server) { client in
                let partner = try await client.partners.register(request)
                if self.server.json { return try self.server.print(partner) }
                Partners.describe(partner)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lists partner organisations.")
        @OptionGroup var server: ServerOptions

        func run() async throws {
            try await withAdminClient(self.server) { client in
                var request = Haven_V1_ListPartnersRequest()
                var all = Haven_V1_ListPartnersResponse()
                repeat {
                    let page = try await client.partners.list(request)
                    all.partners += page.partners
                    request.page.pageToken = page.page.nextPageToken
                } while !request.page.pageToken.isEmpty
                if self.server.json { return try self.server.print(all) }
                CLI.table(
                    ["ID", "KIND", "STATUS", "OFFICES", "NAME"],
                    all.partners.map {
                        [
                            $0.id, Partners.kind($0.kind), $0.active ? "active" : "DEACTIVATED",
                            $0.officeCodes.joined(separator: ","), $0.name,
                        ]
                    }
                )
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Shows a partner organisation.")
        @OptionGroup var server: ServerOptions
        @Option(help: "Partner id.") var id: String

        func run() async throws {
            try await withAdminClient(self.server) { client in
                let partner = try await client.partners.get(.with { $0.partnerID = self.id })
                if self.server.json { return try self.server.print(partner) }
                Partners.describe(partner)
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Changes a partner's name, contact or offices.")
        @OptionGroup var server: ServerOptions
        @Option(help: "Partner id.") var id: String
        @Option(help: "New name.") var name: String?
        @Option(help: "New contact.") var contact: String?
        @Option(help: "New comma-separated office codes (replace the current ones).") var offices: String?

        func validate() throws {
            guard self.name != nil || self.contact != nil || self.offices != nil else {
                throw ValidationError("nothing to change: give --name, --contact or --offices")
            }
        }

        func run() async throws {
            try await withAdminClient(self.server) { client in
                let current = try await client.partners.get(.with { $0.partnerID = self.id })
                var request = Haven_V1_UpdatePartnerRequest()
                request.partnerID = self.id
                request.expectedVersion = current.version
                request.name = self.name ?? ""
                request.contact = self.contact ?? ""
                if let offices {
                    request.changeOffices = true
                    request.officeCodes = Accounts.codes(offices)
                }
                let partner = try await client.partners.update(request)
                if self.server.json { return try self.server.print(partner) }
                Partners.describe(partner)
            }
        }
    }

    struct Deactivate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Deactivates an organisation: its accounts' connections end within a second, new ones are refused."
        )
        @OptionGroup var server: ServerOptions
        @Option(help: "Partner id.") var id: String
        @Option(help: "Why (kept in the audit trail).") var reason = ""
        @Flag(help: "Do not ask for confirmation.") var yes = false

        func run() async throws {
            try await CLI.run(json: self.server.json) {
                try CLI.confirm("Deactivate partner \(self.id) and end its connections?", yes: self.yes)
            }
            try await withAdminClient(self.server) { client in
                let current = try await client.partners.get(.with { $0.partnerID = self.id })
                let partner = try await client.partners.deactivate(
                    .with {
                        $0.partnerID = self.id
                        $0.expectedVersion = current.version
                        $0.reason = self.reason
                    }
                )
                if self.server.json { return try self.server.print(partner) }
                say("Deactivated \(partner.id) (\(partner.name)).")
            }
        }
    }

    struct Reactivate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Reactivates a deactivated organisation.")
        @OptionGroup var server: ServerOptions
        @Option(help: "Partner id.") var id: String
        @Option(help: "Why (kept in the audit trail).") var reason = ""

        func run() async throws {
            try await withAdminClient(self.server) { client in
                let current = try await client.partners.get(.with { $0.partnerID = self.id })
                let partner = try await client.partners.reactivate(
                    .with {
                        $0.partnerID = self.id
                        $0.expectedVersion = current.version
                        $0.reason = self.reason
                    }
                )
                if self.server.json { return try self.server.print(partner) }
                say("Reactivated \(partner.id) (\(partner.name)).")
            }
        }
    }
}
