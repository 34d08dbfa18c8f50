import Crypto
import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import SwiftProtobuf
import Testing

/// A deployment with a running server and connections for each role.
final class Session {
    let deployment: TestDeployment
    var server: RunningServer
    private var connections: [String: RawConnection] = [:]
    private var nextID: UInt64 = 1

    init(_ deployment: TestDeployment, _ server: RunningServer) {
        self.deployment = deployment
        self.server = server
    }

    func connection(_ account: String) async throws -> RawConnection {
        if let connection = self.connections[account] { return connection }
        let connection = try await RawConnection.connect(
            port: self.server.port,
            credentials: try self.deployment.credentials(for: account)
        )
        try await connection.hello()
        self.connections[account] = connection
        return connection
    }

    /// A call id greater than every one used so far (ids are per connection, but one counter keeps it simple).
    func newID() -> UInt64 {
        self.nextID += 1
        return self.nextID
    }

    /// Calls as `account`, expecting success.
    func call<Request, Response>(
        _ account: String,
        _ method: MethodDescriptor<Request, Response>,
        _ request: Request
    )
        async throws -> Response
    {
        self.nextID += 1
        return try await self.connection(account).unary(method, request, id: self.nextID)
    }

    /// Calls as `account`, expecting failure; returns the error.
    func failure<Request, Response>(
        _ account: String,
        _ method: MethodDescriptor<Request, Response>,
        _ request: Request
    )
        async throws -> HavenError
    {
        self.nextID += 1
        let end = try await self.connection(account).call(method, request, id: self.nextID)
        return try #require(end.error, "\(method.fullName) succeeded as \(account) but should have failed")
    }

    func restart() async throws {
        for connection in self.connections.values { await connection.close() }
        self.connections = [:]
        try await self.server.stop()
        self.server = try await self.deployment.start()
    }

    func stop() async throws {
        for connection in self.connections.values { await connection.close() }
        try await self.server.stop()
    }
}

func withSession(_ body: (Session) async throws -> Void) async throws {
    let deployment = try TestDeployment()
    let session = Session(deployment, try await deployment.start())
    do {
        try await body(session)
    } catch {
        try? await session.stop()
        throw error
    }
    try await session.stop()
}

/// Every service over real TLS sockets.
@Suite("Services over TLS")
struct ServiceTests {
    static func officeRequest(_ code: String, key: String? = nil) -> Haven_V1_CreateOfficeRequest {
        var request = Haven_V1_CreateOfficeRequest()
        request.office.code = code
        request.office.name = "\(code) field office"
        request.office.city = ["KOL": "Kolkata", "MUM": "Mumbai", "MNL": "Manila"][code] ?? "Fictional City"
        request.office.country = code == "MNL" ? "PH" : "IN"
        request.office.timeZone = code == "MNL" ? "Asia/Manila" : "Asia/Kolkata"
        request.idempotencyKey = key ?? "create-\(code)"
        return request
    }

    static func date(_ year: Int32, _ month: Int32, _ day: Int32) -> Haven_V1_CivilDate {
        var date = Haven_V1_CivilDate()
        date.year = year
        date.month = month
        date.day = day
        return date
    }

    static func openCase(_ office: String = "KOL", key: String = UUID().uuidString) -> Haven_V1_OpenCaseRequest {
        var request = Haven_V1_OpenCaseRequest()
        request.officeCode = office
        request.category = .sexTrafficking
        request.title = "Raid, fictional lane"
        request.idempotencyKey = key
        return request
    }

    static func registerSurvivor(
        _ office: String = "KOL",
        name: String = "Fictional Person A",
        age: UInt32 = 15
    )
        -> Haven_V1_RegisterSurvivorRequest
    {
        var request = Haven_V1_RegisterSurvivorRequest()
        request.officeCode = office
        request.ageAtIntake = age
        request.intakeOn = date(2026, 3, 14)
        request.identity.legalName = name
        request.identity.dateOfBirth = date(2011, 6, 1)
        request.identity.contacts = [
            .with {
                $0.label = "guardian mobile"
                $0.value = "+91 00000 11111"
            }
        ]
        request.identity.notes = "Fictional notes"
        request.idempotencyKey = UUID().uuidString
        return request
    }

    static func setUpOffices(_ session: Session) async throws {
        for code in ["KOL", "MUM", "MNL"] {
            _ = try await session.call("admin", MethodCatalog.OfficeService.createOffice, Self.officeRequest(code))
        }
    }

    @Test("offices: idempotent create, compare-and-set update, close refused while cases are open")
    func offices() async throws {
        try await withSession { session in
            let kol = try await session.call(
                "admin",
                MethodCatalog.OfficeService.createOffice,
                Self.officeRequest("KOL")
            )
            #expect(kol.version == 1)
            #expect(kol.status == .active)
            // A retried create with the same key returns the same office, not a duplicate or an error.
            let retried = try await session.call(
                "admin",
                MethodCatalog.OfficeService.createOffice,
                Self.officeRequest("KOL")
            )
            #expect(retried == kol)
            // The same key for a different request is refused.
            var other = Self.officeRequest("MUM")
            other.idempotencyKey = "create-KOL"
            #expect(
                try await session.failure("admin", MethodCatalog.OfficeService.createOffice, other).code
                    == .alreadyExists
            )
            // The same code under another key is taken.
            #expect(
                try await session.failure(
                    "admin",
                    MethodCatalog.OfficeService.createOffice,
                    Self.officeRequest("KOL", key: "again")
                ).code
                    == .alreadyExists
            )
            // Validation names the field.
            var bad = Self.officeRequest("MNL")
            bad.office.timeZone = "Mars/Olympus"
            let invalid = try await session.failure("admin", MethodCatalog.OfficeService.createOffice, bad)
            #expect(invalid.code == .invalidArgument)
            #expect(invalid.fieldViolations.map(\.field) == ["office.time_zone"])
            var keyless = Self.officeRequest("MNL")
            keyless.idempotencyKey = ""
            let unkeyed = try await session.failure("admin", MethodCatalog.OfficeService.createOffice, keyless)
            #expect(unkeyed.code == .invalidArgument)
            #expect(unkeyed.fieldViolations.map(\.field) == ["idempotency_key"])
            // Caseworkers may not create offices.
            #expect(
                try await session.failure(
                    "worker-kol",
                    MethodCatalog.OfficeService.createOffice,
                    Self.officeRequest("XYZ")
                ).code
                    == .permissionDenied
            )

            var rename = Haven_V1_UpdateOfficeRequest()
            rename.code = "KOL"
            rename.expectedVersion = 1
            rename.name = "Kolkata North"
            let renamed = try await session.call("admin", MethodCatalog.OfficeService.updateOffice, rename)
            #expect(renamed.version == 2)
            rename.name = "Lost update"
            let stale = try await session.failure("admin", MethodCatalog.OfficeService.updateOffice, rename)
            #expect(stale.code == .failedPrecondition)
            #expect(stale.currentVersion == 2)
            #expect(stale.message.contains("current version is 2"))
            let stored = try await session.call(
                "worker-kol",
                MethodCatalog.OfficeService.getOffice,
                .with { $0.code = "KOL" }
            )
            #expect(stored.name == "Kolkata North")

            _ = try await session.call("worker-kol", MethodCatalog.CaseService.openCase, Self.openCase())
            var close = Haven_V1_CloseOfficeRequest()
            close.code = "KOL"
            close.expectedVersion = 2
            let refused = try await session.failure("admin", MethodCatalog.OfficeService.closeOffice, close)
            #expect(refused.code == .failedPrecondition)
            #expect(refused.message.contains("1 open cases"))

            let listed = try await session.call("worker-kol", MethodCatalog.OfficeService.listOffices, .init())
            #expect(listed.offices.map(\.code) == ["KOL"])
            #expect(
                try await session.failure(
                    "worker-mnl",
                    MethodCatalog.OfficeService.getOffice,
                    .with { $0.code = "KOL" }
                ).code == .notFound
            )
        }
    }

    @Test("cases: references per office and year, timeline, accused status, bail alert flags linked survivors")
    func casesAndAlerts() async throws {
        try await withSession { session in
            try await Self.setUpOffices(session)
            let year = CivilDates.date(unixMs: Int64(Date().timeIntervalSince1970 * 1000), timeZone: "Asia/Kolkata")
                .year
            let first = try await session.call(
                "worker-kol",
                MethodCatalog.CaseService.openCase,
                Self.openCase(key: "c1")
            )
            let second = try await session.call(
                "worker-kol",
                MethodCatalog.CaseService.openCase,
                Self.openCase(key: "c2")
            )
            #expect(first.reference == "KOL-\(year)-0001")
            #expect(second.reference == "KOL-\(year)-0002")
            #expect(first.status == .intake)
            let retried = try await session.call(
                "worker-kol",
                MethodCatalog.CaseService.openCase,
                Self.openCase(key: "c1")
            )
            #expect(retried.id == first.id)
            let manila = try await session.call(
                "director-kol",
                MethodCatalog.CaseService.openCase,
                Self.openCase("MUM")
            )
            #expect(manila.reference == "MUM-\(year)-0001")

            // Other offices' cases are invisible, by id and by reference.
            #expect(
                try await session.failure(
                    "worker-mnl",
                    MethodCatalog.CaseService.getCase,
                    .with { $0.caseID = first.id }
                ).code == .notFound
            )
            #expect(
                try await session.failure(
                    "admin",
                    MethodCatalog.CaseService.getCase,
                    .with { $0.reference = first.reference }
                ).code == .notFound
            )

            let survivor = try await session.call(
                "worker-kol",
                MethodCatalog.SurvivorService.registerSurvivor,
                Self.registerSurvivor()
            )
            var link = Haven_V1_LinkSurvivorRequest()
            link.caseID = first.id
            link.expectedVersion = first.version
            link.survivorID = survivor.id
            var record = try await session.call("worker-kol", MethodCatalog.CaseService.linkSurvivor, link)
            #expect(record.survivorIds == [survivor.id])

            var add = Haven_V1_AddAccusedRequest()
            add.caseID = record.id
            add.expectedVersion = record.version
            add.accused.name = "Fictional Accused"
            add.accused.role = .brothelKeeper
            add.idempotencyKey = "acc-1"
            record = try await session.call("worker-kol", MethodCatalog.CaseService.addAccused, add)
            let accused = try #require(record.accused.first)
            #expect(accused.legalStatus == .atLarge)

            func append(_ detail: (inout Haven_V1_CaseEvent) -> Void, key: String) async throws -> Haven_V1_Case {
                var request = Haven_V1_AppendCaseEventRequest()
                request.caseID = first.id
                request.event.occurredOn = Self.date(2026, 4, 2)
                detail(&request.event)
                request.idempotencyKey = key
                return try await session.call("worker-kol", MethodCatalog.CaseService.appendCaseEvent, request)
            }
            record = try await append(
                {
                    $0.rescueOperation = .with {
                        $0.place = "Fictional district"
                        $0.peopleRescued = 9
                        $0.minorsRescued = 6
                    }
                },
                key: "e1"
            )
            record = try await append({ $0.arrest.accusedIds = [accused.id] }, key: "e2")
            #expect(record.accused[0].legalStatus == .inCustody)
            // The same append retried is not appended twice; the retry returns the case as a read does.
            record = try await append({ $0.arrest.accusedIds = [accused.id] }, key: "e2")
            #expect(record.events.map(\.sequence) == [1, 2])
            #expect(record.eventCount == 2)

            // An accused id that is not of this case is refused and changes nothing.
            var wrong = Haven_V1_AppendCaseEventRequest()
            wrong.caseID = first.id
            wrong.event.occurredOn = Self.date(2026, 4, 3)
            wrong.event.bailGranted.accusedIds = ["acc_not_here"]
            wrong.idempotencyKey = "e-wrong"
            #expect(
                try await session.failure("worker-kol", MethodCatalog.CaseService.appendCaseEvent, wrong).code
                    == .invalidArgument
            )
            // So is an append without an idempotency key, naming the field.
            var keyless = Haven_V1_AppendCaseEventRequest()
            keyless.caseID = first.id
            keyless.event.occurredOn = Self.date(2026, 4, 3)
            keyless.event.note.text = "an append without a key (fictional)"
            let unkeyed = try await session.failure("worker-kol", MethodCatalog.CaseService.appendCaseEvent, keyless)
            #expect(unkeyed.code == .invalidArgument)
            #expect(unkeyed.fieldViolations.map(\.field) == ["idempotency_key"])

            record = try await append(
                {
                    $0.bailGranted = .with {
                        $0.accusedIds = [accused.id]
                        $0.court = "Fictional High Court"
                    }
                },
                key: "e3"
            )
            #expect(record.accused[0].legalStatus == .onBail)
            #expect(record.eventCount == 3, "the refused appends appended nothing")
            // A write's response carries the status changes it made; history_count counts them all.
            #expect(record.accused[0].history.map(\.status) == [.onBail])
            #expect(record.accused[0].history.map(\.sequence) == [3])
            #expect(record.accused[0].historyCount == 3)
            let read = try await session.call(
                "worker-kol",
                MethodCatalog.CaseService.getCase,
                .with { $0.caseID = first.id }
            )
            #expect(read.accused[0].history.map(\.status) == [.atLarge, .inCustody, .onBail])
            #expect(read.accused[0].history.map(\.sequence) == [1, 2, 3])
            #expect(read.accused[0].history.last?.eventID == record.events.last?.id)
            // A write's response carries the events it appended; event_count counts them all.
            #expect(record.events.map(\.sequence) == [3])
            #expect(record.eventCount == 3)

            let alerts = try await session.call(
                "worker-kol",
                MethodCatalog.AlertService.listAlerts,
                .with { $0.openOnly = true }
            )
            let alert = try #require(alerts.alerts.first)
            #expect(alerts.alerts.count == 1)
            #expect(alert.kind == .bailGranted)
            #expect(alert.caseReference == first.reference)
            #expect(alert.flaggedSurvivorIds == [survivor.id])
            var flagged = try await session.call(
                "worker-kol",
                MethodCatalog.SurvivorService.getSurvivor,
                .with { $0.survivorID = survivor.id }
            )
            #expect(flagged.flags.map(\.alertID) == [alert.id])
            #expect(!flagged.flags[0].reason.contains("Fictional"), "flags never carry names")

            var ack = Haven_V1_AcknowledgeAlertRequest()
            ack.alertID = alert.id
            ack.expectedVersion = alert.version
            ack.acknowledgement = "Safety plan reviewed with the home"
            _ = try await session.call("worker-kol", MethodCatalog.AlertService.acknowledgeAlert, ack)
            flagged = try await session.call(
                "worker-kol",
                MethodCatalog.SurvivorService.getSurvivor,
                .with { $0.survivorID = survivor.id }
            )
            #expect(flagged.flags.isEmpty)
            #expect(
                try await session.call(
                    "worker-kol",
                    MethodCatalog.AlertService.listAlerts,
                    .with { $0.openOnly = true }
                ).alerts.isEmpty
            )

            var status = Haven_V1_UpdateCaseStatusRequest()
            status.caseID = first.id
            status.expectedVersion = record.version
            status.status = .prosecution
            status.reason = "Charge sheet filed"
            record = try await session.call("worker-kol", MethodCatalog.CaseService.updateCaseStatus, status)
            #expect(record.status == .prosecution)
            #expect(record.events.last?.statusChanged.newStatus == .prosecution)
            let stale = try await session.failure("worker-kol", MethodCatalog.CaseService.updateCaseStatus, status)
            #expect(stale.code == .failedPrecondition)
            #expect(stale.currentVersion == record.version)

            // Lists: filters, views and pages.
            var list = Haven_V1_ListCasesRequest()
            list.page.pageSize = 1
            let page1 = try await session.call("director-kol", MethodCatalog.CaseService.listCases, list)
            #expect(page1.cases.count == 1)
            #expect(page1.cases[0].events.isEmpty, "basic view omits the timeline")
            var all: [String] = page1.cases.map(\.id)
            list.page.pageToken = page1.page.nextPageToken
            while !list.page.pageToken.isEmpty {
                let page = try await session.call("director-kol", MethodCatalog.CaseService.listCases, list)
                all += page.cases.map(\.id)
                list.page.pageToken = page.page.nextPageToken
            }
            #expect(Set(all) == Set([first.id, second.id, manila.id]))
            #expect(all.count == 3)
            var filtered = Haven_V1_ListCasesRequest()
            filtered.officeCodes = ["KOL"]
            filtered.statuses = [.prosecution]
            filtered.view = .full
            let prosecution = try await session.call("director-kol", MethodCatalog.CaseService.listCases, filtered)
            #expect(prosecution.cases.map(\.id) == [first.id])
            #expect(prosecution.cases[0].events.count == 4)
            var mismatched = filtered
            mismatched.page.pageToken = page1.page.nextPageToken
            #expect(
                try await session.failure("director-kol", MethodCatalog.CaseService.listCases, mismatched).code
                    == .invalidArgument
            )
            #expect(
                try await session.failure(
                    "worker-kol",
                    MethodCatalog.CaseService.listCases,
                    .with { $0.officeCodes = ["MNL"] }
                ).code == .permissionDenied
            )

            // Reports count what happened, never who.
            var reportRequest = Haven_V1_GetOfficeReportRequest()
            reportRequest.officeCode = "KOL"
            reportRequest.period.firstDay = Self.date(2026, 1, 1)
            reportRequest.period.lastDay = Self.date(2026, 12, 31)
            let report = try await session.call(
                "director-kol",
                MethodCatalog.ReportService.getOfficeReport,
                reportRequest
            )
            #expect(report.rescueOperations == 1)
            #expect(report.peopleRescued == 9)
            #expect(report.minorsRescued == 6)
            #expect(report.accusedOnBail == 1)
            #expect(report.survivorsRegistered == 1)
            #expect(
                try await session.failure("worker-mnl", MethodCatalog.ReportService.getOfficeReport, reportRequest).code
                    == .permissionDenied
            )
        }
    }

    @Test("survivors: codes, identity sealed at rest and shown only to whom it may be")
    func survivorsAndIdentity() async throws {
        try await withSession { session in
            try await Self.setUpOffices(session)
            let name = "Fictional Survivor Zeta"
            let survivor = try await session.call(
                "worker-kol",
                MethodCatalog.SurvivorService.registerSurvivor,
                Self.registerSurvivor(name: name)
            )
            #expect(survivor.code == "KOL-S-0001")
            #expect(survivor.minorAtIntake)
            #expect(!survivor.hasIdentity, "the response does not echo the identity")

            let plain = try await session.call(
                "worker-kol",
                MethodCatalog.SurvivorService.getSurvivor,
                .with { $0.code = survivor.code }
            )
            #expect(!plain.hasIdentity)
            let full = try await session.call(
                "worker-kol",
                MethodCatalog.SurvivorService.getSurvivor,
                .with {
                    $0.code = survivor.code
                    $0.includeIdentity = true
                }
            )
            #expect(full.identity.legalName == name)
            #expect(full.identity.notes == "Fictional notes")
            #expect(
                try await session.failure(
                    "admin",
                    MethodCatalog.SurvivorService.getSurvivor,
                    .with {
                        $0.survivorID = survivor.id
                        $0.includeIdentity = true
                    }
                ).code == .notFound
            )
            #expect(
                try await session.failure(
                    "worker-mnl",
                    MethodCatalog.SurvivorService.getSurvivor,
                    .with { $0.survivorID = survivor.id }
                ).code == .notFound
            )

            // Nothing identifying is in the database files in the clear.
            let files = try FileManager.default.contentsOfDirectory(atPath: session.deployment.directory.path("data"))
                .filter { $0.hasPrefix("haven.sqlite") }
            #expect(!files.isEmpty)
            for file in files {
                let bytes = try Data(
                    contentsOf: URL(fileURLWithPath: session.deployment.directory.path("data/\(file)"))
                )
                #expect(bytes.range(of: Data(name.utf8)) == nil, "\(file) holds the legal name in the clear")
                #expect(bytes.range(of: Data("+91 00000 11111".utf8)) == nil, "\(file) holds a contact in the clear")
            }

            var update = Haven_V1_UpdateSurvivorRequest()
            update.survivorID = survivor.id
            update.expectedVersion = survivor.version
            update.identity.legalName = "Fictional Survivor Eta"
            let updated = try await session.call("worker-kol", MethodCatalog.SurvivorService.updateSurvivor, update)
            #expect(updated.version == survivor.version + 1)
            let stale = try await session.failure("worker-kol", MethodCatalog.SurvivorService.updateSurvivor, update)
            #expect(stale.currentVersion == updated.version)
            let reread = try await session.call(
                "director-kol",
                MethodCatalog.SurvivorService.getSurvivor,
                .with {
                    $0.survivorID = survivor.id
                    $0.includeIdentity = true
                }
            )
            #expect(reread.identity.legalName == "Fictional Survivor Eta")

            var service = Haven_V1_RecordServiceRequest()
            service.survivorID = survivor.id
            service.service.kind = .vocationalTraining
            service.service.detail = "baking"
            service.service.deliveredOn = Self.date(2026, 5, 1)
            service.service.sessions = 12
            service.idempotencyKey = "svc-1"
            var withService = try await session.call("worker-kol", MethodCatalog.SurvivorService.recordService, service)
            withService = try await session.call("worker-kol", MethodCatalog.SurvivorService.recordService, service)
            #expect(withService.services.count == 1)
            #expect(withService.services[0].detail == "baking")

            var placement = Haven_V1_SetPlacementRequest()
            placement.survivorID = survivor.id
            placement.expectedVersion = withService.version
            placement.placement.homeName = "Fictional Home One"
            placement.placement.startedOn = Self.date(2026, 3, 15)
            var placed = try await session.call("worker-kol", MethodCatalog.SurvivorService.setPlacement, placement)
            placement.expectedVersion = placed.version
            placement.placement.homeName = "Fictional Home Two"
            placement.placement.startedOn = Self.date(2026, 6, 1)
            placed = try await session.call("worker-kol", MethodCatalog.SurvivorService.setPlacement, placement)
            #expect(placed.placements.count == 2)
            #expect(placed.placements[0].endedOn == Self.date(2026, 5, 31))
            #expect(!placed.placements[1].hasEndedOn)

            let listed = try await session.call("director-kol", MethodCatalog.SurvivorService.listSurvivors, .init())
            #expect(listed.survivors.map(\.code) == ["KOL-S-0001"])
            #expect(listed.survivors.allSatisfy { !$0.hasIdentity })
        }
    }

    @Test("partners and referrals: a partner sees referred survivors only, and identity only as consent allows")
    func referralsAndConsent() async throws {
        try await withSession { session in
            try await Self.setUpOffices(session)
            var register = Haven_V1_RegisterPartnerRequest()
            register.partner.name = "Asha Home (fictional)"
            register.partner.kind = .aftercareHome
            register.partner.officeCodes = ["KOL"]
            register.partner.services = [.shelter, .vocationalTraining]
            register.idempotencyKey = "ptn-1"
            let partner = try await session.call("admin", MethodCatalog.PartnerService.registerPartner, register)
            try await session.server.store.audited { [partner] tx in
                try tx.saveAccount(
                    Account(
                        id: "partner-asha",
                        displayName: "Asha",
                        role: .partner,
                        partnerID: partner.id,
                        createdAtUnixMs: 1
                    )
                )
            }

            let referred = try await session.call(
                "worker-kol",
                MethodCatalog.SurvivorService.registerSurvivor,
                Self.registerSurvivor(name: "Fictional Referred")
            )
            let other = try await session.call(
                "worker-kol",
                MethodCatalog.SurvivorService.registerSurvivor,
                Self.registerSurvivor(name: "Fictional Other")
            )
            #expect(
                try await session.call("partner-asha", MethodCatalog.SurvivorService.listSurvivors, .init()).survivors
                    .isEmpty
            )

            var refer = Haven_V1_CreateReferralRequest()
            refer.survivorID = referred.id
            refer.partnerID = partner.id
            refer.service = .vocationalTraining
            refer.note = "Interested in baking"
            refer.idempotencyKey = "ref-1"
            let referral = try await session.call("worker-kol", MethodCatalog.ReferralService.createReferral, refer)
            #expect(referral.status == .pending)
            #expect(referral.survivorCode == referred.code)

            let visible = try await session.call("partner-asha", MethodCatalog.SurvivorService.listSurvivors, .init())
            #expect(visible.survivors.map(\.code) == [referred.code])
            #expect(
                try await session.failure(
                    "partner-asha",
                    MethodCatalog.SurvivorService.getSurvivor,
                    .with { $0.survivorID = other.id }
                ).code == .notFound
            )

            // No consent yet: identity requested, everything withheld.
            let withheld = try await session.call(
                "partner-asha",
                MethodCatalog.SurvivorService.getSurvivor,
                .with {
                    $0.survivorID = referred.id
                    $0.includeIdentity = true
                }
            )
            #expect(withheld.identity.legalName.isEmpty)
            #expect(withheld.withheldIdentityFields.contains("legal_name"))
            #expect(withheld.services.isEmpty)

            var grant = Haven_V1_GrantConsentRequest()
            grant.survivorID = referred.id
            grant.expectedVersion = referred.version
            grant.consent.partnerID = partner.id
            grant.consent.scopes = [.name]
            grant.consent.purpose = "Vocational training enrolment"
            grant.consent.givenBy = .guardian
            grant.consent.givenOn = Self.date(2026, 3, 20)
            let consented = try await session.call("worker-kol", MethodCatalog.SurvivorService.grantConsent, grant)
            let named = try await session.call(
                "partner-asha",
                MethodCatalog.SurvivorService.getSurvivor,
                .with {
                    $0.survivorID = referred.id
                    $0.includeIdentity = true
                }
            )
            #expect(named.identity.legalName == "Fictional Referred")
            #expect(!named.identity.hasDateOfBirth)
            #expect(named.identity.contacts.isEmpty)
            #expect(named.identity.notes.isEmpty)
            #expect(named.withheldIdentityFields.contains("contacts"))

            var withdraw = Haven_V1_WithdrawConsentRequest()
            withdraw.survivorID = referred.id
            withdraw.expectedVersion = consented.version
            withdraw.consentID = try #require(consented.consents.first).id
            withdraw.reason = "Survivor asked"
            _ = try await session.call("worker-kol", MethodCatalog.SurvivorService.withdrawConsent, withdraw)
            let afterWithdrawal = try await session.call(
                "partner-asha",
                MethodCatalog.SurvivorService.getSurvivor,
                .with {
                    $0.survivorID = referred.id
                    $0.includeIdentity = true
                }
            )
            #expect(afterWithdrawal.identity.legalName.isEmpty)

            var accept = Haven_V1_TransitionReferralRequest()
            accept.referralID = referral.id
            accept.expectedVersion = referral.version
            #expect(
                try await session.failure("worker-kol", MethodCatalog.ReferralService.acceptReferral, accept).code
                    == .permissionDenied
            )
            var early = Haven_V1_RecordServiceRequest()
            early.survivorID = referred.id
            early.service.kind = .counselling
            early.service.deliveredOn = Self.date(2026, 4, 1)
            early.idempotencyKey = "partner-svc-0"
            #expect(
                try await session.failure("partner-asha", MethodCatalog.SurvivorService.recordService, early).code
                    == .permissionDenied,
                "a partner sees a survivor referred to it, but records services only once it has accepted the referral"
            )
            let accepted = try await session.call("partner-asha", MethodCatalog.ReferralService.acceptReferral, accept)
            #expect(accepted.status == .accepted)
            var delivered = early
            delivered.idempotencyKey = "partner-svc-1"
            delivered.service.partnerID = "ptn_someone_else"
            let recorded = try await session.call(
                "partner-asha",
                MethodCatalog.SurvivorService.recordService,
                delivered
            )
            #expect(!recorded.hasIdentity)
            #expect(recorded.services.isEmpty, "no SERVICES consent: the partner's view omits services")
            let staffView = try await session.call(
                "worker-kol",
                MethodCatalog.SurvivorService.getSurvivor,
                .with { $0.survivorID = referred.id }
            )
            #expect(staffView.services.map(\.partnerID) == [partner.id], "recorded as the partner itself")
            #expect(
                try await session.failure("partner-asha", MethodCatalog.ReferralService.acceptReferral, accept).code
                    == .failedPrecondition
            )
            var complete = accept
            complete.expectedVersion = accepted.version
            #expect(
                try await session.failure("partner-asha", MethodCatalog.ReferralService.completeReferral, complete).code
                    == .invalidArgument
            )
            var revoke = complete
            revoke.resolution = "Moved to another district"
            let revoked = try await session.call("worker-kol", MethodCatalog.ReferralService.revokeReferral, revoke)
            #expect(revoked.status == .revoked)
            #expect(
                try await session.call("partner-asha", MethodCatalog.SurvivorService.listSurvivors, .init()).survivors
                    .isEmpty
            )
            #expect(
                try await session.failure(
                    "partner-asha",
                    MethodCatalog.SurvivorService.getSurvivor,
                    .with { $0.survivorID = referred.id }
                ).code == .notFound
            )
            let mine = try await session.call("partner-asha", MethodCatalog.ReferralService.listReferrals, .init())
            #expect(mine.referrals.map(\.id) == [referral.id])
        }
    }

    @Test(
        "the change feed delivers every visible change in order, resumes from a cursor without gap or duplicate, and follows"
    )
    func feed() async throws {
        try await withSession { session in
            try await Self.setUpOffices(session)
            var opened: [String] = []
            for index in 0..<5 {
                opened.append(
                    try await session.call(
                        "worker-kol",
                        MethodCatalog.CaseService.openCase,
                        Self.openCase(key: "f\(index)")
                    ).id
                )
            }
            _ = try await session.call("worker-mnl", MethodCatalog.CaseService.openCase, Self.openCase("MNL"))

            func read(
                _ request: Haven_V1_SubscribeRequest,
                as account: String = "worker-kol"
            ) async throws -> [Haven_V1_FeedItem] {
                let connection = try await session.connection(account)
                let id = session.newID()
                try await connection.send(
                    .start(callID: id, method: MethodCatalog.FeedService.subscribe, request: request, initialCredit: 2)
                )
                var items: [Haven_V1_FeedItem] = []
                while let envelope = try await connection.next() {
                    guard envelope.callID == id else { continue }
                    switch envelope.kind {
                    case .message(let message):
                        items.append(try Haven_V1_FeedItem(decodingPayload: message.payload))
                        try await connection.send(.credit(callID: id, messages: 1))
                    case .end(let end):
                        #expect(end.statusCode == .ok)
                        return items
                    default: break
                    }
                }
                return items
            }
            var all = Haven_V1_SubscribeRequest()
            all.start = .beginning
            let everything = try await read(all)
            let changes = everything.compactMap { item -> Haven_V1_ChangeEvent? in
                if case .change(let change) = item.item { change } else { nil }
            }
            #expect(changes.allSatisfy { $0.officeCode == "KOL" }, "only the caller's office; never MNL's or MUM's")
            #expect(changes.first?.office.code == "KOL")
            let caseChanges = changes.filter { if case .caseRecord = $0.subject { true } else { false } }
            #expect(caseChanges.map(\.caseRecord.id) == opened, "KOL's five cases, in commit order")
            #expect(changes.map(\.sequence) == changes.map(\.sequence).sorted())
            #expect(everything.last?.caughtUp.cursor.isEmpty == false)

            // Resume after the second change: exactly the last three follow.
            var resume = Haven_V1_SubscribeRequest()
            resume.start = .afterCursor
            resume.cursor = caseChanges[1].cursor
            let resumed = try await read(resume).compactMap { item -> String? in
                if case .change(let change) = item.item { change.caseRecord.id } else { nil }
            }
            #expect(resumed == Array(opened[2...]))

            // From the caught-up cursor: nothing new; then follow and see a new change arrive.
            resume.cursor = everything.last!.caughtUp.cursor
            #expect(try await read(resume).allSatisfy { if case .caughtUp = $0.item { true } else { false } })
            resume.follow = true
            let connection = try await session.connection("director-kol")
            let followID = session.newID()
            try await connection.send(
                .start(callID: followID, method: MethodCatalog.FeedService.subscribe, request: resume)
            )
            #expect(try await connection.next()?.callID == followID)  // caught up
            let newer = try await session.call(
                "worker-kol",
                MethodCatalog.CaseService.openCase,
                Self.openCase(key: "late")
            )
            let arrived = try #require(try await connection.next())
            let item = try Haven_V1_FeedItem(decodingPayload: arrived.message.payload)
            #expect(item.change.caseRecord.id == newer.id)

            var bogus = Haven_V1_SubscribeRequest()
            bogus.cursor = "not-a-cursor"
            let connectionMNL = try await session.connection("worker-mnl")
            let end = try await connectionMNL.call(MethodCatalog.FeedService.subscribe, bogus, id: session.newID())
            #expect(end.statusCode == .invalidArgument)
            let auditor = try await session.connection("auditor")
            #expect(
                try await auditor.call(MethodCatalog.FeedService.subscribe, all, id: session.newID()).statusCode
                    == .permissionDenied
            )
        }
    }

    @Test("a restart keeps every acknowledged write")
    func restart() async throws {
        try await withSession { session in
            try await Self.setUpOffices(session)
            var ids: [String] = []
            for index in 0..<20 {
                ids.append(
                    try await session.call(
                        "worker-kol",
                        MethodCatalog.CaseService.openCase,
                        Self.openCase(key: "r\(index)")
                    ).id
                )
            }
            let survivor = try await session.call(
                "worker-kol",
                MethodCatalog.SurvivorService.registerSurvivor,
                Self.registerSurvivor(name: "Fictional Restart")
            )
            try await session.restart()
            for id in ids {
                let record = try await session.call(
                    "worker-kol",
                    MethodCatalog.CaseService.getCase,
                    .with { $0.caseID = id }
                )
                #expect(record.id == id)
            }
            let reread = try await session.call(
                "worker-kol",
                MethodCatalog.SurvivorService.getSurvivor,
                .with {
                    $0.survivorID = survivor.id
                    $0.includeIdentity = true
                }
            )
            #expect(reread.identity.legalName == "Fictional Restart")
            // Numbering continues where it stopped.
            let next = try await session.call(
                "worker-kol",
                MethodCatalog.CaseService.openCase,
                Self.openCase(key: "after")
            )
            #expect(next.reference.hasSuffix("-0021"))
        }
    }

    @Test(
        "record ids: the prefix, then a version-4 UUID's 128 bits in lower-case hex, never repeated; event ids: version 7, in time order"
    )
    func recordIDs() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let keys = KeyCustodian.inMemory(.init(size: .bits256))
        let start = Date(timeIntervalSince1970: 1_796_000_000)
        let clock = TestClock(start)
        let environment = ServiceEnvironment(
            store: try SQLiteStore(path: directory.path("haven.sqlite"), keys: keys.keys),
            keys: keys,
            checkpoints: CheckpointSigner(key: .init()),
            authority: try CredentialAuthority.ephemeral(),
            now: { clock.now }
        )
        /// The id's UUID, after checking its prefix and its spelling.
        func uuid(_ id: String, prefix: String) throws -> UUID {
            #expect(id.hasPrefix(prefix + "_"))
            let hex = Array(id.utf8.dropFirst(prefix.utf8.count + 1))
            #expect(hex.count == 32)
            #expect(hex.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
            // The same bytes as Foundation's spelling of that UUID, without its dashes.
            let dashed = [8, 12, 16, 20].reversed().reduce(String(decoding: hex, as: UTF8.self)) { text, offset in
                var text = text
                text.insert("-", at: text.index(text.startIndex, offsetBy: offset))
                return text
            }
            let uuid = try #require(UUID(uuidString: dashed))
            #expect(uuid.uuidString.lowercased() == dashed)
            #expect([UInt8(ascii: "8"), UInt8(ascii: "9"), UInt8(ascii: "a"), UInt8(ascii: "b")].contains(hex[16]))
            return uuid
        }
        var seen = Set<String>()
        for _ in 0..<1_000 {
            let id = environment.newID("case")
            #expect(try uuid(id, prefix: "case").uuid.6 >> 4 == 4)
            seen.insert(id)
        }
        #expect(seen.count == 1_000)

        // Event ids: version 7, their first 48 bits the server's clock in
        // milliseconds, so that later events sort after earlier ones.
        var events: [String] = []
        for step in 0..<1_000 {
            if step > 0, step % 10 == 0 { clock.advance(by: 0.001) }
            let id = environment.newEventID()
            let bytes = withUnsafeBytes(of: try uuid(id, prefix: "evt").uuid) { Array($0) }
            #expect(bytes[6] >> 4 == 7, "version 7")
            let milliseconds = bytes[0..<6].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            #expect(milliseconds == UInt64(1_796_000_000_000 + step / 10))
            events.append(id)
        }
        #expect(Set(events).count == 1_000)
        // Ids of different milliseconds are in the order they were made.
        let firsts = stride(from: 0, to: 1_000, by: 10).map { events[$0] }
        #expect(firsts == firsts.sorted())
        #expect(Set(events.sorted().prefix(10)) == Set(events.prefix(10)))
    }

    @Test("the router serves every method of the catalog")
    func everyMethodRouted() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let keys = KeyCustodian.inMemory(.init(size: .bits256))
        let store = try SQLiteStore(path: directory.path("haven.sqlite"), keys: keys.keys)
        let router = HavenServices.router(
            ServiceEnvironment(
                store: store,
                keys: keys,
                checkpoints: CheckpointSigner(key: .init()),
                authority: try CredentialAuthority.ephemeral()
            )
        )
        #expect(router.registeredMethods == Set(MethodCatalog.all.map(\.fullName)))
    }
}
