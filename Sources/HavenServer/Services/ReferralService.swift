import HavenProtocol
import HavenStore

/// `haven.v1.ReferralService`: survivors referred to partners for a service.
struct ReferralService: ReferralServiceHandler {
    let environment: ServiceEnvironment

    /// The partner accepts a pending referral.
    func acceptReferral(
        _ request: Haven_V1_TransitionReferralRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_Referral {
        try await self.transition(
            request,
            context,
            from: [.pending],
            to: .accepted,
            byPartner: true,
            resolutionRequired: false
        )
    }

    /// The partner declines a pending referral, saying why.
    func declineReferral(
        _ request: Haven_V1_TransitionReferralRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_Referral {
        try await self.transition(
            request,
            context,
            from: [.pending],
            to: .declined,
            byPartner: true,
            resolutionRequired: true
        )
    }

    /// The partner completes an accepted referral, with the outcome.
    func completeReferral(
        _ request: Haven_V1_TransitionReferralRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_Referral {
        try await self.transition(
            request,
            context,
            from: [.accepted],
            to: .completed,
            byPartner: true,
            resolutionRequired: true
        )
    }

    /// The office revokes a live referral: the partner loses access at once.
    func revokeReferral(
        _ request: Haven_V1_TransitionReferralRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_Referral {
        try await self.transition(
            request,
            context,
            from: [.pending, .accepted],
            to: .revoked,
            byPartner: false,
            resolutionRequired: true
        )
    }

    private var env: ServiceEnvironment { self.environment }

    func createReferral(
        _ request: Haven_V1_CreateReferralRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_Referral {
        try Validate.identifier(request.survivorID, "survivor_id")
        try Validate.identifier(request.partnerID, "partner_id")
        try Validate.known(request.service, "service")
        try Validate.text(request.note, "note", required: false)
        let env = self.env
        let idempotency = try env.writer.idempotency(key: request.idempotencyKey, of: request)
        return try await env.writer.transaction(context) { tx in
            try env.writer.idempotent(context, idempotency, tx) {
                let found = try tx.load(Haven_V1_Survivor.self, id: request.survivorID)
                guard
                    let survivor = try env.policy.survivor(
                        found,
                        id: request.survivorID,
                        for: context.principal,
                        in: tx,
                        now: env.nowUnixMs,
                        current: found
                    )
                else {
                    throw AccessPolicy.notFound("survivor")
                }
                try env.policy.check(context.principal, .writeRecords, office: survivor.officeCode)
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
                referral.referredBy = context.principal.actor
                referral.createdAtUnixMs = env.nowUnixMs
                return try env.writer.create(referral, permission: .office(.writeRecords), context, tx)
            }
        }
    }

    func getReferral(_ request: Haven_V1_GetReferralRequest, _ context: CallContext) async throws -> Haven_V1_Referral {
        let env = self.env
        return try await env.store.read { tx in
            let found = try tx.load(Haven_V1_Referral.self, id: request.referralID)
            guard
                let view = try env.policy.referral(
                    found,
                    id: request.referralID,
                    for: context.principal,
                    in: tx,
                    current: found
                )
            else {
                throw AccessPolicy.notFound("referral")
            }
            return view
        }
    }

    func listReferrals(
        _ request: Haven_V1_ListReferralsRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_ListReferralsResponse {
        var filters = request
        filters.clearPage()
        var query = RecordQuery(order: .newestFirst, limit: PageToken.size(request.page))
        query.after = try PageToken.cursor(request.page, filters: filters)
        let principal = context.principal
        let env = self.env
        if env.policy.reach(principal, .readRecords) != nil {
            query.officeCodes = try env.policy.offices(principal, .readRecords, asked: [])
            if !request.partnerID.isEmpty { query.partnerID = request.partnerID }
        } else if env.policy.reach(principal, .actForPartner) == .ownPartner {
            guard request.partnerID.isEmpty || request.partnerID == principal.account.partnerID else {
                throw HavenError(code: .permissionDenied, message: "a partner sees only referrals addressed to it")
            }
            query.partnerID = principal.account.partnerID
        } else {
            throw AccessPolicy.denied(principal)
        }
        if !request.survivorID.isEmpty { query.subjectID = request.survivorID }
        if !request.statuses.isEmpty { query.statuses = request.statuses.map(\.rawValue) }
        if request.updatedSinceUnixMs > 0 { query.updatedSince = request.updatedSinceUnixMs }
        let page = try await env.store.read { [query] tx in
            let page = try tx.page(Haven_V1_Referral.self, query)
            return RecordPage(
                records: try page.records.compactMap {
                    try env.policy.referral($0, id: $0.id, for: principal, in: tx, current: $0)
                },
                next: page.next
            )
        }
        .bounded(order: query.order)
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
        try Validate.text(request.resolution, "resolution", required: resolutionRequired)
        let env = self.env
        return try await env.writer.transaction(context) { tx in
            try env.writer.update(
                Haven_V1_Referral.self,
                id: request.referralID,
                expected: .required(request.expectedVersion),
                permission: byPartner ? .addressedPartner(.actForPartner) : .office(.writeRecords),
                kind: status == .revoked ? .accessRevoked : .updated,
                context,
                tx
            ) { referral, _ in
                guard from.contains(referral.status) else {
                    throw HavenError(
                        code: .failedPrecondition,
                        message: "referral is \(referral.status.name); cannot become \(status.name)"
                    )
                }
                referral.status = status
                if !request.resolution.isEmpty { referral.resolution = request.resolution }
                return nil
            }
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
