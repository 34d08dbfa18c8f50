import ArgumentParser
import Foundation
import HavenClient
import HavenProtocol
import SwiftProtobuf

/// Loads a fictional dataset into a development deployment.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Loads a fictional dataset (offices, partners, cases, survivors) into a DEVELOPMENT deployment.",
        discussion: """
            Drawn from the kind of stories the organisation publishes, with invented names
            and places: police-requested rescue operations in Kolkata; a Mumbai brothel
            keeper convicted, bailed, who reopened a brothel and was returned to prison;
            survivors in a Mumbai aftercare home resuming school and learning sewing and
            baking, with counselling; seven young women rescued from a bar in Manila, the
            youngest twelve. Refused on a production deployment. Creates a director
            account (demo-director) to write the records, enrolled on this machine into
            --out. Run it once per deployment.
            """
    )
    @OptionGroup var server: ServerOptions
    @Option(help: ArgumentHelp("Where to write the demo director's bundle.", valueName: "dir"))
    var out = "haven-demo-director"

    /// One step, counted for the progress bar.
    final class Steps: @unchecked Sendable {
        let bar = ProgressBar(unit: "steps")
        var done: UInt64 = 0
        static let total: UInt64 = 64
        func step() {
            self.done += 1
            self.bar.show(self.done, max(self.done, Self.total), step: "demo")
        }
    }

    static func day(_ month: Int32, _ day: Int32, year: Int32 = 2026) -> Haven_V1_CivilDate {
        Haven_V1_CivilDate.with {
            $0.year = year
            $0.month = month
            $0.day = day
        }
    }

    func run() async throws {
        let steps = Steps()
        try await withAdminClient(self.server) { admin in
            guard try await admin.operations.getServerStatus().development else {
                throw CLIError.usage(
                    "demo loads fictional records into DEVELOPMENT deployments only; this one is production"
                )
            }
            guard try await admin.accounts.list().accounts.contains(where: { $0.id == "demo-director" }) == false else {
                throw CLIError.usage("the demo was loaded already (the account demo-director exists)")
            }
            // Offices and partners, as the admin.
            for (code, name, city, country, zone) in [
                ("KOL", "Kolkata field office", "Kolkata", "IN", "Asia/Kolkata"),
                ("MUM", "Mumbai field office", "Mumbai", "IN", "Asia/Kolkata"),
                ("MNL", "Manila field office", "Manila", "PH", "Asia/Manila"),
            ] {
                if (try? await admin.offices.get(.with { $0.code = code })) == nil {
                    var office = Haven_V1_CreateOfficeRequest()
                    office.office.code = code
                    office.office.name = name
                    office.office.city = city
                    office.office.country = country
                    office.office.timeZone = zone
                    _ = try await admin.offices.create(office)
                }
                steps.step()
            }
            var partners: [String: String] = [:]
            for (key, name, kind, offices, services) in [
                (
                    "police", "Kolkata Police Anti-Human Trafficking Unit (fictional)", Haven_V1_PartnerKind.policeUnit,
                    ["KOL"], [Haven_V1_ServiceKind]()
                ),
                (
                    "home", "Asha Niwas Aftercare Home, Mumbai (fictional)", .aftercareHome, ["MUM"],
                    [.schooling, .vocationalTraining, .counselling]
                ),
                ("shelter", "Bahay Silungan Shelter, Manila (fictional)", .aftercareHome, ["MNL"], [.counselling]),
            ] {
                var register = Haven_V1_RegisterPartnerRequest()
                register.partner.name = name
                register.partner.kind = kind
                register.partner.officeCodes = offices
                register.partner.services = services
                register.idempotencyKey = "demo-partner-\(key)"
                partners[key] = try await admin.partners.register(register).id
                steps.step()
            }

            // The director who records the field work, enrolled here.
            var create = Haven_V1_CreateAccountRequest()
            create.account.id = "demo-director"
            create.account.displayName = "Demo director (fictional)"
            create.account.role = .director
            create.account.officeCodes = ["KOL", "MUM", "MNL"]
            let created = try await admin.accounts.create(create)
            let bundle = try await HavenEnrollment.enroll(
                server: admin.configuration.serverAddress,
                caPEM: created.enrollment.caCertificatePem,
                code: created.enrollment.code,
                serverHostname: admin.configuration.serverHostname
            )
            let directory = URL(fileURLWithPath: self.out, isDirectory: true)
            try bundle.write(to: directory)
            steps.step()

            var configuration = admin.configuration
            configuration.credentials = try HavenCredentials(bundle: directory)
            let summary = try await withHavenClient(configuration) { director in
                try await Self.load(director, partners: partners, steps: steps)
            }
            steps.bar.finish()
            if self.server.json {
                let data = try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys])
                return say(String(decoding: data, as: UTF8.self))
            }
            say(
                "Loaded the fictional demo: \(summary["cases"] ?? 0) cases, \(summary["survivors"] ?? 0) survivors, \(summary["partners"] ?? 0) partners."
            )
            say("The demo director's credentials: \(directory.path)")
            say("Try: haven-admin reports --office MUM --from 2026-01-01 --to 2026-12-31")
        }
    }

    /// The field work, as the demo director.
    static func load(_ client: HavenClient, partners: [String: String], steps: Steps) async throws -> [String: Int] {
        var cases = 0
        var survivors = 0

        func open(
            _ office: String,
            _ title: String,
            _ category: Haven_V1_CaseCategory,
            police: String
        ) async throws
            -> Haven_V1_Case
        {
            var open = Haven_V1_OpenCaseRequest()
            open.officeCode = office
            open.title = title
            open.category = category
            open.policeReference = police
            cases += 1
            steps.step()
            return try await client.cases.open(open)
        }
        func append(
            _ record: Haven_V1_Case,
            _ on: Haven_V1_CivilDate,
            _ fill: (inout Haven_V1_CaseEvent) -> Void
        )
            async throws -> Haven_V1_Case
        {
            var request = Haven_V1_AppendCaseEventRequest()
            request.caseID = record.id
            request.expectedVersion = record.version
            request.event.occurredOn = on
            fill(&request.event)
            steps.step()
            return try await client.cases.appendEvent(request)
        }
        func survivor(
            _ office: String,
            _ name: String,
            age: UInt32,
            intake: Haven_V1_CivilDate,
            nationality: String
        )
            async throws -> Haven_V1_Survivor
        {
            var register = Haven_V1_RegisterSurvivorRequest()
            register.officeCode = office
            register.ageAtIntake = age
            register.intakeOn = intake
            register.identity.legalName = name
            register.identity.gender = "female"
            register.identity.nationality = nationality
            survivors += 1
            steps.step()
            return try await client.survivors.register(register)
        }
        func link(_ record: Haven_V1_Case, _ survivor: Haven_V1_Survivor) async throws -> Haven_V1_Case {
            var link = Haven_V1_LinkSurvivorRequest()
            link.caseID = record.id
            link.expectedVersion = record.version
            link.survivorID = survivor.id
            steps.step()
            return try await client.cases.linkSurvivor(link)
        }

        // Kolkata: rescue operations the police asked for.
        for (index, (place, people, minors)) in [
            ("a lane off a market in north Kolkata (fictional)", UInt32(6), UInt32(4)),
            ("a lodge near a railway station (fictional)", 3, 1),
        ].enumerated() {
            var record = try await open(
                "KOL",
                "Police-requested rescue \(index + 1) (fictional)",
                .sexTrafficking,
                police: "AHTU/2026/\(31 + index)"
            )
            record = try await append(record, day(2 + Int32(index), 10)) {
                $0.rescueOperation.place = place
                $0.rescueOperation.peopleRescued = people
                $0.rescueOperation.minorsRescued = minors
                $0.rescueOperation.ledBy = "Anti-Human Trafficking Unit, at the police's request (fictional)"
            }
            for number in 0..<2 {
                let person = try await survivor(
                    "KOL",
                    "Kolkata survivor \(index * 2 + number + 1) (fictional)",
                    age: 15 + UInt32(number),
                    intake: day(2 + Int32(index), 11),
                    nationality: "IN"
                )
                record = try await link(record, person)
            }
        }

        // Mumbai: convicted, bailed, reopened a brothel, returned to prison.
        var mumbai = try await open(
            "MUM",
            "Brothel keeper convicted, bailed, returned to prison (fictional)",
            .sexTrafficking,
            police: "MUM/CR/2025/118"
        )
        var accused = Haven_V1_AddAccusedRequest()
        accused.caseID = mumbai.id
        accused.expectedVersion = mumbai.version
        accused.accused.name = "Vikram Sawant (fictional)"
        accused.accused.role = .brothelKeeper
        mumbai = try await client.cases.addAccused(accused)
        steps.step()
        let accusedIDs = mumbai.accused.map(\.id)
        mumbai = try await append(mumbai, day(1, 8)) {
            $0.arrest.accusedIds = accusedIDs
            $0.arrest.agency = "Mumbai Police (fictional)"
            $0.arrest.place = "a brothel in central Mumbai (fictional)"
        }
        mumbai = try await append(mumbai, day(3, 19)) {
            $0.conviction.accusedIds = accusedIDs
            $0.conviction.court = "Sessions Court, Mumbai (fictional)"
            $0.conviction.sentence = "Seven years' rigorous imprisonment (fictional)"
            $0.conviction.sentenceMonths = 84
        }
        mumbai = try await append(mumbai, day(5, 2)) {
            $0.bailGranted.accusedIds = accusedIDs
            $0.bailGranted.court = "High Court (fictional)"
            $0.bailGranted.conditions = "Pending appeal; report weekly (fictional)"
        }
        mumbai = try await append(mumbai, day(8, 27)) {
            $0.reArrest.accusedIds = accusedIDs
            $0.reArrest.reason = "Reopened a brothel while on bail (fictional)"
            $0.reArrest.returnedToPrison = true
        }

        // Mumbai: survivors in an aftercare home, back at school, learning sewing and baking, with counselling.
        for (number, age) in [UInt32(14), 15, 17].enumerated() {
            var person = try await survivor(
                "MUM",
                "Mumbai survivor \(number + 1) (fictional)",
                age: age,
                intake: day(1, 9),
                nationality: "IN"
            )
            mumbai = try await link(mumbai, person)
            // Linking changed the survivor too (its cases): read its version again.
            person = try await client.survivors.get(.with { $0.survivorID = person.id })
            var placement = Haven_V1_SetPlacementRequest()
            placement.survivorID = person.id
            placement.expectedVersion = person.version
            placement.placement.partnerID = partners["home"] ?? ""
            placement.placement.startedOn = day(1, 10)
            person = try await client.survivors.setPlacement(placement)
            steps.step()
            for (kind, detail, month, sessions) in [
                (Haven_V1_ServiceKind.schooling, "Resumed school (fictional)", Int32(6), UInt32(1)),
                (.vocationalTraining, number == 1 ? "Baking (fictional)" : "Sewing (fictional)", 7, 12),
                (.counselling, "Weekly counselling (fictional)", 8, 10),
            ] {
                var service = Haven_V1_RecordServiceRequest()
                service.survivorID = person.id
                service.expectedVersion = person.version
                service.service.kind = kind
                service.service.detail = detail
                service.service.deliveredOn = day(month, 15)
                service.service.sessions = sessions
                person = try await client.survivors.recordService(service)
                steps.step()
            }
        }

        // Manila: seven young women rescued from a bar, the youngest twelve.
        var manila = try await open("MNL", "Rescue from a bar (fictional)", .sexTrafficking, police: "MNL/2026/044")
        manila = try await append(manila, day(9, 12)) {
            $0.rescueOperation.place = "a bar in Manila (fictional)"
            $0.rescueOperation.peopleRescued = 7
            $0.rescueOperation.minorsRescued = 4
            $0.rescueOperation.ledBy = "Police with the field office (fictional)"
        }
        for (number, age) in [UInt32(12), 14, 16, 17, 18, 19, 20].enumerated() {
            let person = try await survivor(
                "MNL",
                "Manila survivor \(number + 1) (fictional)",
                age: age,
                intake: day(9, 12),
                nationality: "PH"
            )
            manila = try await link(manila, person)
        }
        return ["cases": cases, "survivors": survivors, "partners": partners.count]
    }
}
