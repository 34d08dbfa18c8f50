import ArgumentParser
import HavenClient
import HavenProtocol

/// Field offices, through the server.
struct Offices: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Creates and lists field offices.",
        subcommands: [Create.self, List.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Creates an office.")
        @OptionGroup var server: ServerOptions
        @Option(help: "Office code: 2 to 8 upper-case letters, e.g. KOL.") var code: String
        @Option(help: "Display name.") var name: String
        @Option(help: "City.") var city: String
        @Option(help: "ISO 3166-1 alpha-2 country code, e.g. IN.") var country: String
        @Option(name: .customLong("time-zone"), help: "IANA time zone, e.g. Asia/Kolkata.") var timeZone: String

        func validate() throws {
            guard (2...8).contains(self.code.count), self.code.allSatisfy({ $0.isASCII && $0.isUppercase }) else {
                throw ValidationError("--code must be 2 to 8 upper-case letters")
            }
        }

        func run() async throws {
            var request = Haven_V1_CreateOfficeRequest()
            request.office.code = self.code
            request.office.name = self.name
            request.office.city = self.city
            request.office.country = self.country
            request.office.timeZone = self.timeZone
            try await withAdminClient(self.server) { client in
                try self.server.print(try await client.offices.create(request))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lists offices.")
        @OptionGroup var server: ServerOptions

        func run() async throws {
            try await withAdminClient(self.server) { client in
                var request = Haven_V1_ListOfficesRequest()
                repeat {
                    let page = try await client.offices.list(request)
                    for office in page.offices {
                        if self.server.json {
                            try self.server.print(office)
                        } else {
                            say(
                                "\(office.code)\t\(office.name)\t\(office.city), \(office.country)\t\(office.timeZone)\tv\(office.version)"
                            )
                        }
                    }
                    request.page.pageToken = page.page.nextPageToken
                } while !request.page.pageToken.isEmpty
            }
        }
    }
}

/// Partner organisations, through the server.
struct Partners: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Registers partner organisations.",
        subcommands: [Register.self]
    )

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Registers a partner organisation and prints its id.")
        @OptionGroup var server: ServerOptions
        @Option(help: "Its name.") var name: String
        @Option(
            help: "police-unit, aftercare-home, government-agency, ngo, legal-aid, medical, training-provider or other."
        )
        var kind: String
        @Option(help: "Comma-separated office codes it works with.") var offices: String

        static let kinds: [String: Haven_V1_PartnerKind] = [
            "police-unit": .policeUnit, "aftercare-home": .aftercareHome, "government-agency": .governmentAgency,
            "ngo": .ngo, "legal-aid": .legalAid, "medical": .medical, "training-provider": .trainingProvider,
            "other": .other,
        ]

        func validate() throws {
            guard Self.kinds[self.kind] != nil else {
                throw ValidationError("--kind must be one of \(Self.kinds.keys.sorted().joined(separator: ", "))")
            }
        }

        func run() async throws {
            var request = Haven_V1_RegisterPartnerRequest()
            request.partner.name = self.name
            request.partner.kind = Self.kinds[self.kind]!
            request.partner.officeCodes = self.offices.split(separator: ",").map(String.init)
            try await withAdminClient(self.server) { client in
                try self.server.print(try await client.partners.register(request))
            }
        }
    }
}
