import Foundation
import HavenProtocol
import HavenStore
import Logging

/// `haven.v1.SurvivorService`: survivors, their aftercare and their consent.
struct SurvivorService: SurvivorServiceHandler {
    let environment: ServiceEnvironment

    private var env: ServiceEnvironment { self.environment }

    static func validate(_ identity: Haven_V1_SurvivorIdentity) throws(HavenError) {
        try Validate.text(identity.legalName, "identity.legal_name")
        for name in identity.otherNames { try Validate.text(name, "identity.other_names") }
        try Validate.date(identity.dateOfBirth, "identity.date_of_birth", required: false)
        try Validate.text(identity.gender, "identity.gender", required: false)
        if !identity.nationality.isEmpty { try Validate.country(identity.nationality, "identity.nationality") }
        try Validate.text(identity.notes, "identity.notes", required: false)
    }

    func registerSurvivor(
        _ request: Haven_V1_RegisterSurvivorRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_Survivor {
        try self.env.policy.check(context.principal, .writeRecords, office: request.officeCode)
        try Validate.require(request.ageAtIntake <= 130, "age_at_intake", "must be 0 to 130")
        try Validate.date(request.intakeOn, "intake_on")
        try Self.validate(request.identity)
        if request.status != .unspecified { try Validate.known(request.status, "status") }
        let env = self.env
        let idempotency = try env.writer.idempotency(key: request.idempotencyKey, of: request)
        return try await env.writer.transaction(context) { tx in
            try env.writer.idempotent(context, idempotency, tx) {
                let office = try CaseService.activeOffice(request.officeCode, tx)
                let number = try tx.nextCounterValue("survivor:\(office.code)")
                var survivor = Haven_V1_Survivor()
                survivor.id = env.newID("srv")
                survivor.code = "\(office.code)-S-\(CaseService.padded(number))"
                survivor.officeCode = office.code
                survivor.ageAtIntake = request.ageAtIntake
                survivor.minorAtIntake = request.ageAtIntake < 18
                survivor.intakeOn = request.intakeOn
                survivor.status = request.status == .unspecified ? .inAftercare : request.status
                survivor.createdAtUnixMs = env.nowUnixMs
                return try env.writer.create(
                    survivor,
                    identity: request.identity,
                    permission: .office(.writeRecords),
                    context,
                    tx
                )
            }
        }
    }

    func getSurvivor(_ request: Haven_V1_GetSurvivorRequest, _ context: CallContext) async throws -> Haven_V1_Survivor {
        let env = self.env
        let principal = context.principal
        let now = env.nowUnixMs
        // What the read discloses (an identity, what a partner's consent
        // covers) is audited before the survivor is returned.
        let survivor = try await env.writer.read(context) { tx, disclosures -> Haven_V1_Survivor in
            let (found, key): (Haven_V1_Survivor?, String) =
                switch request.key {
                case .survivorID(let id): (try tx.load(Haven_V1_Survivor.self, id: id), id)
                case .code(let code): (try tx.load(Haven_V1_Survivor.self, alias: code), code)
                case .none: throw HavenError.invalidField("key", "survivor_id or code required")
                }
            // The same queries whether the survivor exists or not.
            guard
                let policyView = try env.policy.survivor(
                    found,
                    id: found?.id ?? key,
                    for: principal,
                    in: tx,
                    now: now,
                    current: found
                ),
                let found
            else {
                throw AccessPolicy.notFound("survivor")
            }
            // Its latest services, if the view shows any (decided by the policy).
            var view = try SurvivorReads.withLatestServices(policyView, tx)
            let partner = env.policy.allows(principal, .actForPartner, partner: principal.account.partnerID)
            if partner, Self.carriesConsented(view) { disclosures.add(found, "consented") }
            guard request.includeIdentity else { return view }
            guard found.erasedAtUnixMs == 0 else {
                throw HavenError(code: .failedPrecondition, message: "this survivor's identity was erased")
            }
            guard let identity = try tx.identity(survivorID: found.id) else {
                throw HavenError(code: .dataLoss, message: "survivor \(found.code) has no sealed identity")
            }
            if env.policy.allows(principal, .readIdentities, office: found.officeCode) {
                view.identity = identity
                disclosures.add(found, "identity")
            } else if partner {
                ConsentView.applyIdentity(
                    identity,
                    to: &view,
                    consents: found.consents,
                    partnerID: principal.account.partnerID,
                    now: now
                )
                disclosures.add(found, "identity")
            } else {
                throw AccessPolicy.denied(principal)
            }
            return view
        }
        return survivor
    }

    /// Whether a partner's view carries fields only consent lets it see.
    static func carriesConsented(_ view: Haven_V1_Survivor) -> Bool {
        !view.services.isEmpty || !view.placements.isEmpty
    }

    func eraseSurvivor(
        _ request: Haven_V1_EraseSurvivorRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_Survivor {
        try Validate.identifier(request.survivorID, "survivor_id")
        try Validate.text(request.reason, "reason")
        let env = self.env
        let principal = context.principal
        let now = env.nowUnixMs
        // Which office's key to rotate; nothing is rotated for a caller who may not erase here.
        let office = try await env.store.read { tx -> String in
            guard let found = try tx.load(Haven_V1_Survivor.self, id: request.survivorID),
                try env.policy.view(found, for: principal, in: tx, now: now) != nil
            else { throw AccessPolicy.notFound("survivor") }
            return found.officeCode
        }
        try env.policy.check(principal, .eraseRecords, office: office)
        let writer = env.writer
        return try await env.keys.rotate(env.store, offices: [office]) { tx, rotation, fingerprint in
            let erased = try writer.update(
                Haven_V1_Survivor.self,
                id: request.survivorID,
                expected: .required(request.expectedVersion),
                permission: .office(.eraseRecords),
                erasing: true,
                context,
                tx
            ) { survivor, now in
                guard survivor.erasedAtUnixMs == 0 else {
                    throw HavenError(code: .failedPrecondition, message: "this survivor's identity was already erased")
                }
                if let hold = try LegalHold.hold(for: survivor, tx) {
                    throw HavenError(
                        code: .failedPrecondition,
                        message:
                            "a legal hold applies: case \(hold) has an accused whose prosecution or appeal is open"
                    )
                }
                survivor.erasedAtUnixMs = now
                // The store drops what is sealed when erasing; cleared here too, so the record returned says so.
                _ = survivor.takeSealedFields()
                return nil
            }
            try tx.appendAudit(
                writer.entry(
                    context,
                    outcome: .ok,
                    detail:
                        "identity erased; reason: \(LogText.escaped(request.reason, limit: 300)); \(rotation.recordKeysRewrapped) record keys re-wrapped, master key now \(fingerprint)"
                )
            )
            return erased
        }
    }

    func listSurvivors(
        _ request: Haven_V1_ListSurvivorsRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_ListSurvivorsResponse {
        var filters = request
        filters.clearPage()
        var query = RecordQuery(order: .aliasAscending, limit: PageToken.size(request.page))
        query.after = try PageToken.cursor(request.page, filters: filters)
        if !request.statuses.isEmpty { query.statuses = request.statuses.map(\.rawValue) }
        if request.intake.hasFirstDay {
            try Validate.date(request.intake.firstDay, "intake.first_day")
            query.dayFrom = dayString(request.intake.firstDay)
        }
        if request.intake.hasLastDay {
            try Validate.date(request.intake.lastDay, "intake.last_day")
            query.dayTo = dayString(request.intake.lastDay)
        }
        if request.updatedSinceUnixMs > 0 { query.updatedSince = request.updatedSinceUnixMs }
        let principal = context.principal
        let env = self.env
        let now = env.nowUnixMs
        if request.flaggedOnly {
            guard env.policy.seesFlags(principal) else {
                throw HavenError(code: .permissionDenied, message: "\(principal.role.name) does not see flags")
            }
            query.flagged = true
        }
        if env.policy.reach(principal, .readRecords) != nil {
            query.officeCodes = try env.policy.offices(principal, .readRecords, asked: request.officeCodes)
        } else if env.policy.reach(principal, .actForPartner) == .ownPartner {
            if !request.officeCodes.isEmpty { query.officeCodes = request.officeCodes }
            query.referredBy = ConsentView.referredTo(principal.account.partnerID)
        } else {
            throw AccessPolicy.denied(principal)
        }
        let partner = env.policy.reach(principal, .readRecords) == nil
        let page = try await env.writer.read(context) { [query] tx, disclosures -> RecordPage<Haven_V1_Survivor> in
            var query = query
            if !request.caseID.isEmpty {
                guard
                    let record = env.policy.caseRecord(
                        try tx.load(Haven_V1_Case.self, id: request.caseID),
                        for: principal
                    )
                else { throw AccessPolicy.notFound("case") }
                query.ids = record.survivorIds
            }
            let page = try tx.page(Haven_V1_Survivor.self, query)
            let views = try page.records.compactMap { record -> Haven_V1_Survivor? in
                guard
                    let view = try env.policy.survivor(
                        record,
                        id: record.id,
                        for: principal,
                        in: tx,
                        now: now,
                        current: record
                    ).map({ try SurvivorReads.withLatestServices($0, tx) })
                else { return nil }
                if partner, Self.carriesConsented(view) { disclosures.add(record, "consented") }
                return view
            }
            return RecordPage(records: views, next: page.next)
        }
        .bounded(order: query.order)
        var response = Haven_V1_ListSurvivorsResponse()
        response.survivors = page.records
        response.page = try PageToken.token(after: page.next, filters: filters)
        return response
    }

    func updateSurvivor(
        _ request: Haven_V1_UpdateSurvivorRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_Survivor {
        if request.hasIdentity { try Self.validate(request.identity) }
        try Validate.require(request.ageAtIntake <= 130, "age_at_intake", "must be 0 to 130")
        return try await self.mutate(request.survivorID, .required(request.expectedVersion), context) {
            survivor,
            tx,
            _ in
            if request.ageAtIntake > 0 {
                survivor.ageAtIntake = request.ageAtIntake
                survivor.minorAtIntake = request.ageAtIntake < 18
            }
            guard request.hasIdentity else { return nil }
            guard survivor.erasedAtUnixMs == 0 else {
                throw HavenError(code: .failedPrecondition, message: "this survivor's identity was erased")
            }
            return request.identity
        }
    }

    func recordService(
        _ request: Haven_V1_RecordServiceRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_Survivor {
        let input = request.service
        try Validate.known(input.kind, "service.kind")
        try Validate.date(input.deliveredOn, "service.delivered_on")
        try Validate.text(
            input.detail,
            "service.detail",
            required: input.kind == .other || input.kind == .vocationalTraining
        )
        try Validate.require(input.sessions <= 10_000, "service.sessions", "at most 10000")
        let env = self.env
        let principal = context.principal
        let partnerID = principal.account.partnerID
        let delivering = env.policy.allows(principal, .recordDeliveredService, partner: partnerID)
        let idempotency = try env.writer.idempotency(key: request.idempotencyKey, of: request)
        return try await env.writer.transaction(context) { tx in
            try env.writer.idempotent(context, idempotency, tx) {
                try env.writer.update(
                    Haven_V1_Survivor.self,
                    id: request.survivorID,
                    expected: .optional(request.expectedVersion),
                    permission: delivering ? .deliveredService : .office(.writeRecords),
                    context,
                    tx
                ) { survivor, now in
                    var record = input
                    if delivering { record.partnerID = partnerID }
                    if !record.partnerID.isEmpty {
                        try Self.requirePartner(record.partnerID, tx, field: "service.partner_id")
                    }
                    record.id = env.newID("svc")
                    record.recordedBy = principal.actor
                    record.recordedAtUnixMs = now
                    survivor.record(record)
                    return nil
                }
            }
        }
    }

    func listSurvivorServices(
        _ request: Haven_V1_ListSurvivorServicesRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_ListSurvivorServicesResponse {
        try Validate.identifier(request.survivorID, "survivor_id")
        let paging = try HistoryPaging(request)
        let env = self.env
        let principal = context.principal
        let now = env.nowUnixMs
        let (count, services) = try await env.writer.read(context) { tx, disclosures in
            let found = try tx.load(Haven_V1_Survivor.self, id: request.survivorID)
            switch try env.policy.survivorServices(found, id: request.survivorID, for: principal, in: tx, now: now) {
            case nil: throw AccessPolicy.notFound("survivor")
            case false?:
                throw HavenError(
                    code: .permissionDenied,
                    message: "no consent in force shares this survivor's services with your organisation"
                )
            case true?: break
            }
            guard let found else { throw AccessPolicy.notFound("survivor") }
            let services = try tx.survivorServices(
                SurvivorServiceQuery(found.id, after: paging.after, limit: paging.limit)
            )
            let partner = env.policy.reach(principal, .readRecords) == nil
            if partner, !services.isEmpty { disclosures.add(found, "consented") }
            return (found.serviceCount, services)
        }
        let page = try paging.page(services, place: \.sequence)
        var response = Haven_V1_ListSurvivorServicesResponse()
        response.services = page.elements
        response.serviceCount = count
        response.page = page.info
        return response
    }

    func setPlacement(_ request: Haven_V1_SetPlacementRequest, _ context: CallContext) async throws -> Haven_V1_Survivor
    {
        let input = request.placement
        try Validate.date(input.startedOn, "placement.started_on")
        try Validate.require(
            input.partnerID.isEmpty != input.homeName.isEmpty,
            "placement",
            "exactly one of partner_id and home_name"
        )
        try Validate.text(input.homeName, "placement.home_name", required: false)
        let env = self.env
        return try await self.mutate(request.survivorID, .required(request.expectedVersion), context) {
            survivor,
            tx,
            _ in
            if !input.partnerID.isEmpty { try Self.requirePartner(input.partnerID, tx, field: "placement.partner_id") }
            if let index = survivor.placements.lastIndex(where: { !$0.hasEndedOn }) {
                let current = survivor.placements[index]
                guard CivilDates.onOrBefore(current.startedOn, input.startedOn), current.startedOn != input.startedOn
                else {
                    throw HavenError(
                        code: .failedPrecondition,
                        message: "the new placement must start after the current one"
                    )
                }
                survivor.placements[index].endedOn = Self.dayBefore(input.startedOn)
            }
            var placement = input
            placement.id = env.newID("plc")
            placement.clearEndedOn()
            survivor.placements.append(placement)
            return nil
        }
    }

    func updateSurvivorStatus(
        _ request: Haven_V1_UpdateSurvivorStatusRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_Survivor {
        try Validate.known(request.status, "status")
        try Validate.text(request.reason, "reason", required: false)
        return try await self.mutate(request.survivorID, .required(request.expectedVersion), context) {
            survivor,
            _,
            _ in
            guard survivor.status != request.status else {
                throw HavenError(code: .failedPrecondition, message: "survivor is already in that status")
            }
            survivor.status = request.status
            return nil
        }
    }

    func grantConsent(_ request: Haven_V1_GrantConsentRequest, _ context: CallContext) async throws -> Haven_V1_Survivor
    {
        let input = request.consent
        try Validate.identifier(input.partnerID, "consent.partner_id")
        try Validate.require(!input.scopes.isEmpty, "consent.scopes", "at least one scope")
        for scope in input.scopes { try Validate.known(scope, "consent.scopes") }
        try Validate.text(input.purpose, "consent.purpose")
        try Validate.known(input.givenBy, "consent.given_by")
        try Validate.date(input.givenOn, "consent.given_on")
        let env = self.env
        try Validate.require(
            input.expiresAtUnixMs == 0 || input.expiresAtUnixMs > env.nowUnixMs,
            "consent.expires_at_unix_ms",
            "must be in the future"
        )
        return try await self.mutate(request.survivorID, .required(request.expectedVersion), context) {
            survivor,
            tx,
            _ in
            try Self.requirePartner(input.partnerID, tx, field: "consent.partner_id")
            var consent = input
            consent.id = env.newID("cns")
            consent.withdrawnAtUnixMs = 0
            consent.withdrawalReason = ""
            consent.recordedBy = context.principal.actor
            survivor.consents.append(consent)
            return nil
        }
    }

    func withdrawConsent(
        _ request: Haven_V1_WithdrawConsentRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_Survivor {
        try Validate.identifier(request.consentID, "consent_id")
        try Validate.text(request.reason, "reason", required: false)
        return try await self.mutate(request.survivorID, .required(request.expectedVersion), context) {
            survivor,
            _,
            now in
            guard let index = survivor.consents.firstIndex(where: { $0.id == request.consentID }) else {
                throw HavenError(code: .notFound, message: "no consent with that id on this survivor")
            }
            guard survivor.consents[index].withdrawnAtUnixMs == 0 else {
                throw HavenError(code: .failedPrecondition, message: "consent already withdrawn")
            }
            survivor.consents[index].withdrawnAtUnixMs = now
            survivor.consents[index].withdrawalReason = request.reason
            return nil
        }
    }

    // MARK: Shared

    static func requirePartner(_ id: String, _ tx: any StoreReader, field: String) throws {
        guard let partner = try tx.load(Haven_V1_PartnerOrganisation.self, id: id) else {
            throw HavenError(code: .notFound, message: "\(field): no partner with that id")
        }
        guard partner.active else {
            throw HavenError(code: .failedPrecondition, message: "\(field): partner is inactive")
        }
    }

    static func dayBefore(_ date: Haven_V1_CivilDate) -> Haven_V1_CivilDate {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let day = calendar.date(from: DateComponents(year: Int(date.year), month: Int(date.month), day: Int(date.day)))!
        let before = calendar.dateComponents(
            [.year, .month, .day],
            from: calendar.date(byAdding: .day, value: -1, to: day)!
        )
        var result = Haven_V1_CivilDate()
        result.year = Int32(before.year!)
        result.month = Int32(before.month!)
        result.day = Int32(before.day!)
        return result
    }

    /// Changes a survivor the caller may write, through the record writer;
    /// `change` may return a newly sealed identity.
    private func mutate(
        _ survivorID: String,
        _ expected: ExpectedVersion,
        _ context: CallContext,
        _ change:
            @escaping @Sendable (inout Haven_V1_Survivor, any StoreWriter, Int64) throws -> Haven_V1_SurvivorIdentity?
    ) async throws -> Haven_V1_Survivor {
        let env = self.env
        return try await env.writer.transaction(context) { tx in
            try env.writer.update(
                Haven_V1_Survivor.self,
                id: survivorID,
                expected: expected,
                permission: .office(.writeRecords),
                context,
                tx
            ) { survivor, now in try change(&survivor, tx, now) }
        }
    }
}

/// How a survivor is read: the one assembly of a survivor and its services,
/// for the services and for anything that serves the same read.
package enum SurvivorReads {
    /// A survivor as a read returns it: the view the access policy gave and
    /// its latest services, at most ``HavenLimits/survivorServicesInline`` of
    /// them and ``HavenLimits/survivorServicesInlineBytes`` (always the last
    /// one), oldest first. Called on the policy's view, never before it: a
    /// view that may not show services has no `service_count`
    /// (``ConsentView/partnerView(of:consents:partnerID:now:)``), and gets none
    /// — so no detail is opened for a caller who would not see it.
    package static func withLatestServices(
        _ view: Haven_V1_Survivor,
        _ tx: any StoreReader
    ) throws
        -> Haven_V1_Survivor
    {
        guard view.serviceCount > 0 else { return view }
        var query = SurvivorServiceQuery(view.id, limit: HavenLimits.survivorServicesInline)
        query.newestFirst = true
        let latest = boundedPrefix(
            try tx.survivorServices(query),
            count: HavenLimits.survivorServicesInline,
            bytes: HavenLimits.survivorServicesInlineBytes
        )
        var assembled = view
        assembled.services = latest.reversed()
        return assembled
    }
}
