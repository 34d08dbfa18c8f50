import Foundation
import HavenProtocol
import HavenStore
import Logging

/// `haven.v1.SurvivorService`: survivors, their aftercare and their consent.
struct SurvivorService {
    let environment: ServiceEnvironment

    func register(into router: inout Router) {
        router.register(MethodCatalog.SurvivorService.registerSurvivor, self.registerSurvivor)
        router.register(MethodCatalog.SurvivorService.getSurvivor, self.get)
        router.register(MethodCatalog.SurvivorService.listSurvivors, self.list)
        router.register(MethodCatalog.SurvivorService.updateSurvivor, self.update)
        router.register(MethodCatalog.SurvivorService.recordService, self.recordService)
        router.register(MethodCatalog.SurvivorService.setPlacement, self.setPlacement)
        router.register(MethodCatalog.SurvivorService.updateSurvivorStatus, self.updateStatus)
        router.register(MethodCatalog.SurvivorService.grantConsent, self.grantConsent)
        router.register(MethodCatalog.SurvivorService.withdrawConsent, self.withdrawConsent)
    }

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
        return try await env.store.write { tx in
            try env.writer.idempotent(context, key: request.idempotencyKey, request: request, tx) {
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
                let sealed = try env.vault.seal(
                    request.identity,
                    survivorID: survivor.id,
                    officeCode: office.code,
                    in: tx
                )
                return try env.writer.create(
                    survivor,
                    secret: sealed,
                    permission: .office(.writeRecords),
                    context,
                    tx
                )
            }
        }
    }

    func get(_ request: Haven_V1_GetSurvivorRequest, _ context: CallContext) async throws -> Haven_V1_Survivor {
        let env = self.env
        let principal = context.principal
        let now = env.nowUnixMs
        let survivor = try await env.store.read { tx -> Haven_V1_Survivor in
            let (found, key): (Haven_V1_Survivor?, String) =
                switch request.key {
                case .survivorID(let id): (try tx.load(Haven_V1_Survivor.self, id: id), id)
                case .code(let code): (try tx.load(Haven_V1_Survivor.self, alias: code), code)
                case .none: throw HavenError.invalidField("key", "survivor_id or code required")
                }
            // The same queries whether the survivor exists or not.
            guard
                var view = try env.policy.survivor(
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
            guard request.includeIdentity else { return view }
            let identity = try Self.identity(of: found, tx, env)
            if env.policy.allows(principal, .readIdentities, office: found.officeCode) {
                view.identity = identity
            } else if env.policy.allows(principal, .actForPartner, partner: principal.account.partnerID) {
                ConsentView.applyIdentity(
                    identity,
                    to: &view,
                    consents: found.consents,
                    partnerID: principal.account.partnerID,
                    now: now
                )
            } else {
                throw AccessPolicy.denied(principal)
            }
            return view
        }
        if request.includeIdentity {
            // The audit log (its own service) will record this read in the same
            // transaction; until then the log says who read which code, never what.
            context.logger.notice(
                "identity read",
                metadata: ["survivor": "\(survivor.code)", "principal": "\(principal.id)"]
            )
        }
        return survivor
    }

    static func identity(
        of survivor: Haven_V1_Survivor,
        _ tx: any StoreReader,
        _ env: ServiceEnvironment
    ) throws
        -> Haven_V1_SurvivorIdentity
    {
        guard let sealed = try tx.secret(of: Haven_V1_Survivor.self, id: survivor.id) else {
            throw HavenError(code: .dataLoss, message: "survivor \(survivor.code) has no sealed identity")
        }
        return try env.vault.open(sealed, survivorID: survivor.id, officeCode: survivor.officeCode, in: tx)
    }

    func list(
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
        let page = try await env.store.read { [query] tx -> RecordPage<Haven_V1_Survivor> in
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
            return RecordPage(
                records: try page.records.compactMap {
                    try env.policy.survivor($0, id: $0.id, for: principal, in: tx, now: now, current: $0)
                },
                next: page.next
            )
        }
        .bounded(order: query.order)
        var response = Haven_V1_ListSurvivorsResponse()
        response.survivors = page.records
        response.page = try PageToken.token(after: page.next, filters: filters)
        return response
    }

    func update(_ request: Haven_V1_UpdateSurvivorRequest, _ context: CallContext) async throws -> Haven_V1_Survivor {
        if request.hasIdentity { try Self.validate(request.identity) }
        try Validate.require(request.ageAtIntake <= 130, "age_at_intake", "must be 0 to 130")
        let env = self.env
        return try await self.mutate(request.survivorID, .required(request.expectedVersion), context) {
            survivor,
            tx,
            _ in
            if request.ageAtIntake > 0 {
                survivor.ageAtIntake = request.ageAtIntake
                survivor.minorAtIntake = request.ageAtIntake < 18
            }
            guard request.hasIdentity else { return nil }
            return try env.vault.seal(
                request.identity,
                survivorID: survivor.id,
                officeCode: survivor.officeCode,
                in: tx
            )
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
        return try await env.store.write { tx in
            try env.writer.idempotent(context, key: request.idempotencyKey, request: request, tx) {
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
                    survivor.services.append(record)
                    return nil
                }
            }
        }
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

    func updateStatus(
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
        _ change: @escaping @Sendable (inout Haven_V1_Survivor, any StoreWriter, Int64) throws -> [UInt8]?
    ) async throws -> Haven_V1_Survivor {
        let env = self.env
        return try await env.store.write { tx in
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
