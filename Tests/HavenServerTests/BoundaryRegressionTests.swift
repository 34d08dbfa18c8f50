import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import NIOCore
import SwiftProtobuf
import Testing

/// One test per defect of the access-boundary issue, each against a real
/// server over mutual TLS, reproducing what an attacker with real
/// credentials did.
@Suite("Access boundary regressions over TLS")
struct BoundaryRegressionTests {
    /// Offices, partner `asha` with its account, and a KOL survivor referred
    /// to it (accepted) with consent for placement and services.
    struct Referred {
        var partnerID: String
        var survivor: Haven_V1_Survivor
        var referral: Haven_V1_Referral
    }

    static func referredSurvivor(_ session: Session) async throws -> Referred {
        try await ServiceTests.setUpOffices(session)
        var register = Haven_V1_RegisterPartnerRequest()
        register.partner.name = "Asha Home (fictional)"
        register.partner.kind = .aftercareHome
        register.partner.officeCodes = ["KOL"]
        register.idempotencyKey = "ptn-regression"
        let partner = try await session.call("admin", MethodCatalog.PartnerService.registerPartner, register)
        try session.deployment.updateAccount("partner-asha") { $0.partnerID = partner.id }

        var survivor = try await session.call(
            "worker-kol",
            MethodCatalog.SurvivorService.registerSurvivor,
            ServiceTests.registerSurvivor(name: "Fictional Regression Person")
        )
        var grant = Haven_V1_GrantConsentRequest()
        grant.survivorID = survivor.id
        grant.expectedVersion = survivor.version
        grant.consent.partnerID = partner.id
        grant.consent.scopes = [.placement, .services]
        grant.consent.purpose = "aftercare (fictional)"
        grant.consent.givenBy = .guardian
        grant.consent.givenOn = ServiceTests.date(2026, 3, 14)
        survivor = try await session.call("worker-kol", MethodCatalog.SurvivorService.grantConsent, grant)
        var create = Haven_V1_CreateReferralRequest()
        create.survivorID = survivor.id
        create.partnerID = partner.id
        create.service = .shelter
        create.note = "Secret note for the partner (fictional)"
        create.idempotencyKey = "referral-regression"
        var referral = try await session.call("worker-kol", MethodCatalog.ReferralService.createReferral, create)
        var accept = Haven_V1_TransitionReferralRequest()
        accept.referralID = referral.id
        accept.expectedVersion = referral.version
        referral = try await session.call("partner-asha", MethodCatalog.ReferralService.acceptReferral, accept)
        return Referred(partnerID: partner.id, survivor: survivor, referral: referral)
    }

    static func revoke(_ session: Session, _ referral: Haven_V1_Referral) async throws -> Haven_V1_Referral {
        var revoke = Haven_V1_TransitionReferralRequest()
        revoke.referralID = referral.id
        revoke.expectedVersion = referral.version
        revoke.resolution = "Partner no longer trusted (fictional)"
        return try await session.call("worker-kol", MethodCatalog.ReferralService.revokeReferral, revoke)
    }

    static func setPlacement(_ session: Session, _ survivorID: String, home: String) async throws {
        let current = try await session.call(
            "worker-kol",
            MethodCatalog.SurvivorService.getSurvivor,
            .with { $0.survivorID = survivorID }
        )
        var placement = Haven_V1_SetPlacementRequest()
        placement.survivorID = survivorID
        placement.expectedVersion = current.version
        placement.placement.homeName = home
        placement.placement.startedOn = ServiceTests.date(2026, 4, Int32(1 + current.placements.count))
        _ = try await session.call("worker-kol", MethodCatalog.SurvivorService.setPlacement, placement)
    }

    /// Every feed item of a finite read from the beginning, as `account`.
    static func replayFeed(_ session: Session, as account: String) async throws -> [Haven_V1_FeedItem] {
        let connection = try await session.connection(account)
        let id = session.newID()
        var request = Haven_V1_SubscribeRequest()
        request.start = .beginning
        try await connection.send(
            .start(callID: id, method: MethodCatalog.FeedService.subscribe, request: request, initialCredit: 1000)
        )
        var items: [Haven_V1_FeedItem] = []
        while let envelope = try await connection.next() {
            guard envelope.callID == id else { continue }
            switch envelope.kind {
            case .message(let message): items.append(try Haven_V1_FeedItem(decodingPayload: message.payload))
            case .end(let end):
                #expect(end.statusCode == .ok)
                return items
            default: break
            }
        }
        return items
    }

    @Test("1. an idempotent replay shows the record as the caller may see it now: NOT_FOUND once a referral is revoked")
    func idempotentReplayAsksThePolicy() async throws {
        try await withSession { session in
            let referred = try await Self.referredSurvivor(session)
            var delivered = Haven_V1_RecordServiceRequest()
            delivered.survivorID = referred.survivor.id
            delivered.service.kind = .shelter
            delivered.service.deliveredOn = ServiceTests.date(2026, 3, 20)
            delivered.idempotencyKey = "partner-service-1"
            _ = try await session.call("partner-asha", MethodCatalog.SurvivorService.recordService, delivered)

            _ = try await Self.revoke(session, referred.referral)
            try await Self.setPlacement(session, referred.survivor.id, home: "Safe House After Revocation (fictional)")
            let replay = try await session.failure(
                "partner-asha",
                MethodCatalog.SurvivorService.recordService,
                delivered
            )
            #expect(replay.code == .notFound, "the replay must not return the survivor as it is now")
            #expect(!replay.message.contains("Safe House"))
        }
    }

    @Test("1b. a caseworker moved to another office cannot read the old office's case by replaying a create")
    func movedCaseworkerReplay() async throws {
        try await withSession { session in
            let opened = try await session.officesAndKolCase()
            var note = Haven_V1_AppendCaseEventRequest()
            note.caseID = opened.id
            note.event.occurredOn = ServiceTests.date(2026, 3, 1)
            note.event.note.text = "First note (fictional)"
            note.idempotencyKey = "note-before-move"
            _ = try await session.call("worker-kol", MethodCatalog.CaseService.appendCaseEvent, note)

            try session.deployment.updateAccount("worker-kol") { $0.officeCodes = ["MNL"] }
            // The old connection is ended (within SessionCutoffTests' bound for
            // two shared cores); a new one carries the new offices.
            let old = try await session.connection("worker-kol")
            #expect(await old.closed(within: .seconds(SessionCutoffTests.bound.components.seconds)))
            let fresh = try await RawConnection.connect(
                port: session.server.port,
                credentials: try session.deployment.credentials(for: "worker-kol")
            )
            try await fresh.hello()
            let end = try await fresh.call(MethodCatalog.CaseService.appendCaseEvent, note, id: 2)
            #expect(end.statusCode == .notFound)
            #expect(end.payload.isEmpty, "nothing of the case comes back")
            await fresh.close()
        }
    }

    @Test("2. the feed replayed from the beginning shows history through today's consent, not the snapshot's")
    func feedReplayUsesTodaysConsent() async throws {
        try await withSession { session in
            let referred = try await Self.referredSurvivor(session)
            try await Self.setPlacement(session, referred.survivor.id, home: "Fictional Safe House")
            let before = try await Self.replayFeed(session, as: "partner-asha")
            #expect(
                before.contains { $0.change.survivor.placements.contains { $0.homeName == "Fictional Safe House" } },
                "while consent covers placement, the partner sees it"
            )

            let current = try await session.call(
                "worker-kol",
                MethodCatalog.SurvivorService.getSurvivor,
                .with { $0.survivorID = referred.survivor.id }
            )
            var withdraw = Haven_V1_WithdrawConsentRequest()
            withdraw.survivorID = current.id
            withdraw.expectedVersion = current.version
            withdraw.consentID = current.consents[0].id
            _ = try await session.call("worker-kol", MethodCatalog.SurvivorService.withdrawConsent, withdraw)

            let after = try await Self.replayFeed(session, as: "partner-asha")
            let snapshots = after.compactMap { item -> Haven_V1_Survivor? in
                if case .survivor(let survivor) = item.change.subject { survivor } else { nil }
            }
            #expect(!snapshots.isEmpty, "the referral is live: the partner still sees the pseudonymous record")
            #expect(snapshots.allSatisfy { $0.placements.isEmpty && $0.services.isEmpty })
        }
    }

    @Test("4. partners cannot filter on flags")
    func partnersDoNotLearnFlags() async throws {
        try await withSession { session in
            _ = try await Self.referredSurvivor(session)
            var flagged = Haven_V1_ListSurvivorsRequest()
            flagged.flaggedOnly = true
            let error = try await session.failure("partner-asha", MethodCatalog.SurvivorService.listSurvivors, flagged)
            #expect(error.code == .permissionDenied)
            let all = try await session.call("partner-asha", MethodCatalog.SurvivorService.listSurvivors, .init())
            #expect(all.survivors.count == 1 && all.survivors.allSatisfy { $0.flags.isEmpty })
        }
    }

    @Test("5. ACCESS_REVOKED carries identifiers only, live and replayed")
    func accessRevokedCarriesIdentifiersOnly() async throws {
        try await withSession { session in
            let referred = try await Self.referredSurvivor(session)
            _ = try await Self.revoke(session, referred.referral)
            let items = try await Self.replayFeed(session, as: "partner-asha")
            let revoked = items.filter { $0.change.kind == .accessRevoked }
            #expect(revoked.count == 1)
            for item in items where item.change.referral.id == referred.referral.id {
                #expect(item.change.referral.note.isEmpty && item.change.referral.resolution.isEmpty)
                #expect(!item.change.referral.hasReferredBy)
                #expect(item.change.referral.survivorID == referred.survivor.id)
            }
            let direct = try await session.call(
                "partner-asha",
                MethodCatalog.ReferralService.getReferral,
                .with { $0.referralID = referred.referral.id }
            )
            #expect(direct.status == .revoked && direct.note.isEmpty && direct.resolution.isEmpty)
        }
    }

    @Test("6. a rescue count that would overflow is refused, and stored figures saturate instead of trapping")
    func reportsCannotTrap() async throws {
        try await withSession { session in
            let opened = try await session.officesAndKolCase()
            var rescue = Haven_V1_AppendCaseEventRequest()
            rescue.caseID = opened.id
            rescue.event.occurredOn = ServiceTests.date(2026, 3, 1)
            rescue.event.rescueOperation.place = "Fictional lane"
            rescue.event.rescueOperation.peopleRescued = 4_000_000_000
            rescue.idempotencyKey = "rescue-huge"
            let refused = try await session.failure("worker-kol", MethodCatalog.CaseService.appendCaseEvent, rescue)
            #expect(refused.code == .invalidArgument)
            #expect(refused.fieldViolations.map(\.field) == ["event.rescue_operation.people_rescued"])

            // Figures stored before the bound existed (written straight into the database) still report.
            try await session.server.store.audited { tx in
                guard var record = try tx.load(Haven_V1_Case.self, id: opened.id) else { return }
                for index in 0..<2 {
                    var event = Haven_V1_CaseEvent()
                    event.id = "evt_legacy_\(index)"
                    event.occurredOn = ServiceTests.date(2026, 3, 2)
                    event.rescueOperation.place = "Fictional lane"
                    event.rescueOperation.peopleRescued = 4_000_000_000
                    // Appended as the store appends: numbered on from the count.
                    record.eventCount += 1
                    event.sequence = record.eventCount
                    record.events.append(event)
                }
                record.version += 1
                try tx.update(record, expectedVersion: record.version - 1)
            }
            var report = Haven_V1_GetOfficeReportRequest()
            report.officeCode = "KOL"
            report.period.firstDay = ServiceTests.date(2026, 1, 1)
            report.period.lastDay = ServiceTests.date(2026, 12, 31)
            let first = try await session.call("director-kol", MethodCatalog.ReportService.getOfficeReport, report)
            #expect(first.peopleRescued == UInt32.max, "saturated, not wrapped")
            #expect(first.rescueOperations == 2)
            let again = try await session.call("director-kol", MethodCatalog.ReportService.getOfficeReport, report)
            #expect(again.peopleRescued == UInt32.max, "the server is still up")
        }
    }

    @Test(
        "7. no event can make a case unreadable: fields are bounded, and a timeline grows past 1 MiB while every read fits a frame"
    )
    func casesCannotOutgrowAFrame() async throws {
        try await withSession { session in
            let opened = try await session.officesAndKolCase()
            var arrest = Haven_V1_AppendCaseEventRequest()
            arrest.caseID = opened.id
            arrest.event.occurredOn = ServiceTests.date(2026, 3, 1)
            arrest.event.rescueOperation.place = String(repeating: "x", count: 3_000_000)
            arrest.idempotencyKey = "huge-place"
            let huge = try await session.failure("worker-kol", MethodCatalog.CaseService.appendCaseEvent, arrest)
            #expect(huge.code == .invalidArgument)
            #expect(huge.fieldViolations.map(\.field) == ["event.rescue_operation.place"])

            // The largest notes allowed, 100 of them: 1.6 MB of timeline, past
            // the 1 MiB a record may hold. Events are stored on their own, so
            // every append is taken, and each response carries its event only.
            var note = Haven_V1_AppendCaseEventRequest()
            note.caseID = opened.id
            note.event.occurredOn = ServiceTests.date(2026, 3, 2)
            note.event.note.text = String(repeating: "n", count: 16 * 1024)
            let appended = 100
            for index in 0..<appended {
                note.idempotencyKey = "note-\(index)"
                let response = try await session.call("worker-kol", MethodCatalog.CaseService.appendCaseEvent, note)
                #expect(response.events.map(\.sequence) == [UInt32(index + 1)])
            }
            let stored = try await session.call(
                "worker-kol",
                MethodCatalog.CaseService.getCase,
                .with { $0.caseID = opened.id }
            )
            #expect(stored.eventCount == UInt32(appended))
            #expect(stored.version == UInt64(appended) + 1)
            // A read carries the latest events that fit in 512 KiB, oldest first, ending with the last.
            #expect(stored.events.count > 20 && stored.events.count < appended)
            #expect(stored.events.last?.sequence == UInt32(appended))
            #expect(
                stored.events.map(\.sequence) == Array((appended - stored.events.count + 1)...appended).map(UInt32.init)
            )
            #expect(stored.events.reduce(0) { $0 + $1.wireSize } <= HavenLimits.caseEventsInlineBytes)
            #expect(stored.events.allSatisfy { $0.note.text.count == 16 * 1024 }, "notes opened")

            // ListCaseEvents pages through the whole timeline, once each, in order, within a page's bytes.
            var request = Haven_V1_ListCaseEventsRequest()
            request.caseID = opened.id
            request.page.pageSize = 500
            var sequences: [UInt32] = []
            while true {
                let page = try await session.call("worker-kol", MethodCatalog.CaseService.listCaseEvents, request)
                #expect(page.eventCount == UInt32(appended))
                #expect(!page.events.isEmpty)
                #expect(page.events.reduce(0) { $0 + $1.wireSize } <= HavenLimits.maxPageBytes)
                sequences += page.events.map(\.sequence)
                guard !page.page.nextPageToken.isEmpty else { break }
                request.page.pageToken = page.page.nextPageToken
            }
            #expect(sequences == Array(1...UInt32(appended)))
            // after_sequence starts after a known event; a token is valid only with the filters it was issued for.
            var tail = Haven_V1_ListCaseEventsRequest()
            tail.caseID = opened.id
            tail.afterSequence = UInt32(appended - 2)
            let last = try await session.call("worker-kol", MethodCatalog.CaseService.listCaseEvents, tail)
            #expect(last.events.map(\.sequence) == [UInt32(appended - 1), UInt32(appended)])
            #expect(last.page.nextPageToken.isEmpty)
            var first = Haven_V1_ListCaseEventsRequest()
            first.caseID = opened.id
            first.page.pageSize = 10
            let firstPage = try await session.call("worker-kol", MethodCatalog.CaseService.listCaseEvents, first)
            var mismatched = tail
            mismatched.page.pageToken = firstPage.page.nextPageToken
            let refusedToken = try await session.failure(
                "worker-kol",
                MethodCatalog.CaseService.listCaseEvents,
                mismatched
            )
            #expect(refusedToken.code == .invalidArgument)
            let noCase = try await session.failure(
                "worker-kol",
                MethodCatalog.CaseService.listCaseEvents,
                Haven_V1_ListCaseEventsRequest()
            )
            #expect(noCase.code == .invalidArgument)

            var full = Haven_V1_ListCasesRequest()
            full.view = .full
            let listed = try await session.call("worker-kol", MethodCatalog.CaseService.listCases, full)
            #expect(listed.cases.contains { $0.id == opened.id && $0.events.last?.sequence == UInt32(appended) })
            let feed = try await Self.replayFeed(session, as: "director-kol")
            #expect(feed.last?.caughtUp.cursor.isEmpty == false, "the feed reads past the long case to the present")
        }
    }

    @Test("8. a client agent cannot forge log lines")
    func logInjection() async throws {
        let deployment = try TestDeployment()
        let capture = LogCapture()
        let server = try await deployment.start(logger: capture.logger())
        let connection = try await RawConnection.connect(
            port: server.port,
            credentials: try deployment.credentials(for: "worker-kol")
        )
        try await connection.send(
            .hello(clientAgent: "evil/1\ninfo identity read survivor=KOL-S-0001 principal=director-kol", versions: [1])
        )
        _ = try await connection.next()
        await connection.close()
        try await server.stop()
        let hello = capture.all.filter { $0.contains("client hello") }
        #expect(hello.count == 1)
        #expect(capture.all.allSatisfy { !$0.contains("\n") }, "every logged value stays on its line")
        #expect(hello.first?.contains("evil/1\\u{a}info identity read") == true)
    }

    @Test("10. unbounded inputs get INVALID_ARGUMENT, not a retryable code or an echo")
    func unboundedInputs() async throws {
        try await withSession { session in
            try await ServiceTests.setUpOffices(session)
            var statuses = Haven_V1_ListCasesRequest()
            statuses.statuses = Array(repeating: .intake, count: 1_000_000)
            let tooMany = try await session.failure("worker-kol", MethodCatalog.CaseService.listCases, statuses)
            #expect(tooMany.code == .invalidArgument)
            #expect(tooMany.fieldViolations.map(\.field) == ["statuses"])

            var survivor = ServiceTests.registerSurvivor()
            survivor.identity.languages = Array(repeating: "bn", count: 21)
            let languages = try await session.failure(
                "worker-kol",
                MethodCatalog.SurvivorService.registerSurvivor,
                survivor
            )
            #expect(languages.fieldViolations.map(\.field) == ["identity.languages"])
            survivor = ServiceTests.registerSurvivor()
            survivor.identity.homeAddress.lines = [String(repeating: "a", count: 201)]
            let line = try await session.failure("worker-kol", MethodCatalog.SurvivorService.registerSurvivor, survivor)
            #expect(line.fieldViolations.map(\.field) == ["identity.home_address.lines[0]"])

            let connection = try await RawConnection.connect(
                port: session.server.port,
                credentials: try session.deployment.credentials(for: "worker-kol")
            )
            try await connection.send(.hello(clientAgent: "versions", versions: Array(repeating: 7, count: 1_000_000)))
            let goAway = try #require(try await connection.next())
            #expect(StatusCode(wire: goAway.goAway.code) == .invalidArgument)
            #expect((try goAway.serializedBytes() as [UInt8]).count < 1024, "the go-away does not echo the offer")
            #expect(await connection.closed(within: .seconds(5)))
        }
    }
}

extension Session {
    /// Offices KOL, MUM and MNL, and a KOL case opened by `worker-kol`.
    func officesAndKolCase() async throws -> Haven_V1_Case {
        try await ServiceTests.setUpOffices(self)
        return try await self.call("worker-kol", MethodCatalog.CaseService.openCase, ServiceTests.openCase())
    }
}
