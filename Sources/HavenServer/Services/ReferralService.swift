import HavenProtocol
import HavenStore

/// `haven.v1.ReferralService`: survivors referred to partners for a service.
struct ReferralService {
    let environment: ServiceEnvironment

    func register(into router: inout Router) {
        router.register(MethodCatalog.ReferralService.createReferral, self.create)
        router.register(MethodCatalog.ReferralService.getReferral, self.get)
        router.register(MethodCatalog.ReferralService.listReferrals, self.list)
        router.register(MethodCatalog.ReferralService.acceptReferral) { request, context in
            try await self.transition(
                request,
                context,
                from: [.pending],
                to: .accepted,
                byPartner: true,
                resolutionRequired: false
            )
        }
        router.register(MethodCatalog.ReferralService.declineReferral) { request, context in
            try await self.transition(
                request,
                context,
                from: [.pending],
                to: .declined,
                byPartner: true,
                resolutionRequired: true
            )
        }
        router.register(MethodCatalog.ReferralService.completeReferral) { request, context in
            try await self.transition(
                request,
                context,
                from: [.accepted],
                to: .completed,
                byPartner: true,
                resolutionRequired: true
            )
        }
        router.register(MethodCatalog.ReferralService.revokeReferral) { request, context in
            try await self.transition(
                request,
                context,
                from: [.pending, .accepted],
                to: .revoked,
                byPartner: false,
                resolutionRequired: true
            )
        }
    }

    private var env: ServiceEnvironment { self.environment }

    func create(_ request: Haven_V1_CreateReferralRequest, _ context: CallContext) async throws -> Haven_V1_Referral {
        try Validate.identifier(request.survivorID, "survivor_id")
        try Validate.identifier(request.partnerID, "partner_id")
        try Validate.known(request.service, "service")
        try Validate.text(request.note, "note", required: false, maxBytes: 4000)
        let env = self.env
        let now = env.nowUnixMs
        return try await env.store.write { tx in
            try env.idempotent(tx, context: context, key: request.idempotencyKey, request: request) {
                guard let survivor = try tx.load(Haven_V1_Survivor.self, id: request.survivorID),
                    env.policy.allows(context.principal, .readOfficeRecords(survivor.officeCode))
                else {
                    throw HavenError(code: .notFound, message: "no survivor with that id")
                }
                try env.policy.check(context.principal, .writeOfficeRecords(survivor.officeCode))
                guard let partner = try tx.load(Haven_V1_PartnerOrganisation.self, id: request.partnerID) else {
                    throw HavenError(code: .notFound, message: "no partner with that id")
                }
                guard partner.active, partner.officeCodes.contains(survivor.officeCode) else {
                    throw HavenError(
                        code: .failedPrecondition,
                        message: "partner is inactive or does not work with office \(survivor.officeCode)"
                    )
                }
                var referral = Haven_V1_Referral()
                referral.id = env.newID("ref")
                referral.survivorID = survivor.id
                referral.survivorCode = survivor.code
                referral.partnerID = partner.id
                referral.officeCode = survivor.officeCode
                referral.service = request.service
                referral.note = request.note
                referral.status = .pending
                referral.version = 1
                referral.referredBy = context.principal.actor
                referral.createdAtUnixMs = now
                referral.updatedAtUnixMs = now
                try tx.insert(referral)
                try env.recordChange(
                    tx,
                    .created,
                    officeCode: referral.officeCode,
                    partnerID: partner.id,
                    survivorID: survivor.id,
                    at: now
                ) { $0.referral = referral }
                return referral
            }
        }
    }

    /// Whether the principal may see a referral: its office's staff, or the partner it is addressed to.
    func visible(_ referral: Haven_V1_Referral, _ principal: Principal) -> Bool {
        self.env.policy.allows(principal, .readOfficeRecords(referral.officeCode))
            || self.env.policy.allows(principal, .actForPartner(referral.partnerID))
    }

    func get(_ request: Haven_V1_GetReferralRequest, _ context: CallContext) async throws -> Haven_V1_Referral {
        guard
            let referral = try await self.env.store.read({ try $0.load(Haven_V1_Referral.self, id: request.referralID) }
            ),
            self.visible(referral, context.principal)
        else {
            throw HavenError(code: .notFound, message: "no referral with that id")
        }
        return referral
    }

    func list(
        _ request: Haven_V1_ListReferralsRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_ListReferralsResponse {
        var filters = request
        filters.clearPage()
        var query = RecordQuery(order: .newestFirst, limit: PageToken.size(request.page))
        query.after = try PageToken.cursor(request.page, filters: filters)
        let principal = context.principal
        if principal.role == .partner {
            guard request.partnerID.isEmpty || request.partnerID == principal.account.partnerID else {
                throw HavenError(code: .permissionDenied, message: "a partner sees only referrals addressed to it")
            }
            query.partnerID = principal.account.partnerID
        } else {
            query.officeCodes = try CaseService(environment: self.env).visibleOffices([], context)
            if !request.partnerID.isEmpty { query.partnerID = request.partnerID }
        }
        if !request.survivorID.isEmpty { query.subjectID = request.survivorID }
        if !request.statuses.isEmpty { query.statuses = request.statuses.map(\.rawValue) }
        if request.updatedSinceUnixMs > 0 { query.updatedSince = request.updatedSinceUnixMs }
        let page = try await self.env.store.read { [query] in try $0.page(Haven_V1_Referral.self, query) }
        var response = Haven_V1_ListReferralsResponse()
        response.referrals = page.records
        response.page = try PageToken.token(after: page.next, filters: filters)
        return response
    }

    func transition(
        _ request: Haven_V1_TransitionReferralRequest,
        _ context: CallContext,
        from: Set<Haven_V1_ReferralStatus>,
        to status: Haven_V1_ReferralStatus,
        byPartner: Bool,
        resolutionRequired: Bool
    ) async throws -> Haven_V1_Referral {
        try Validate.text(request.resolution, "resolution", required: resolutionRequired, maxBytes: 2000)
        let env = self.env
        return try await env.store.write { tx in
            guard var referral = try tx.load(Haven_V1_Referral.self, id: request.referralID),
                self.visible(referral, context.principal)
            else {
                throw HavenError(code: .notFound, message: "no referral with that id")
            }
            if byPartner {
                try env.policy.check(context.principal, .actForPartner(referral.partnerID))
            } else {
                try env.policy.check(context.principal, .writeOfficeRecords(referral.officeCode))
            }
            try env.requireVersion(request.expectedVersion, current: referral.version)
            guard from.contains(referral.status) else {
                throw HavenError(
                    code: .failedPrecondition,
                    message: "referral is \(referral.status.name); cannot become \(status.name)"
                )
            }
            let now = env.nowUnixMs
            let stored = referral.version
            referral.status = status
            if !request.resolution.isEmpty { referral.resolution = request.resolution }
            referral.version += 1
            referral.updatedAtUnixMs = now
            try tx.update(referral, expectedVersion: stored)
            try env.recordChange(
                tx,
                status == .revoked ? .accessRevoked : .updated,
                officeCode: referral.officeCode,
                partnerID: referral.partnerID,
                survivorID: referral.survivorID,
                at: now
            ) { $0.referral = referral }
            return referral
        }
    }
}

extension Haven_V1_ReferralStatus {
    var name: String {
        switch self {
        case .pending: "pending"
        case .accepted: "accepted"
        case .declined: "declined"
        case .completed: "completed"
        case .revoked: "revoked"
        case .unspecified, .UNRECOGNIZED: "unknown"
        }
    }
}
