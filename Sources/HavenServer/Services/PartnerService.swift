import HavenProtocol
import HavenStore

/// `haven.v1.PartnerService`: partner organisations.
struct PartnerService: PartnerServiceHandler {
    let environment: ServiceEnvironment

    func deactivatePartner(
        _ request: Haven_V1_SetPartnerActiveRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_PartnerOrganisation {
        try await self.setActive(false, request, context)
    }

    func reactivatePartner(
        _ request: Haven_V1_SetPartnerActiveRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_PartnerOrganisation {
        try await self.setActive(true, request, context)
    }

    private var env: ServiceEnvironment { self.environment }

    func registerPartner(
        _ request: Haven_V1_RegisterPartnerRequest,
        _ context: CallContext
    ) async throws
        -> Haven_V1_PartnerOrganisation
    {
        try self.env.policy.check(context.principal, .administer)
        let input = request.partner
        try Validate.text(input.name, "partner.name")
        try Validate.known(input.kind, "partner.kind")
        try Validate.require(!input.officeCodes.isEmpty, "partner.office_codes", "at least one office")
        for service in input.services { try Validate.known(service, "partner.services") }
        try Validate.text(input.contact, "partner.contact", required: false)
        let env = self.env
        let idempotency = try env.writer.idempotency(key: request.idempotencyKey, of: request)
        return try await env.writer.transaction(context) { tx in
            try env.writer.idempotent(context, idempotency, tx) {
                for code in input.officeCodes where try tx.load(Haven_V1_Office.self, id: code) == nil {
                    throw HavenError(code: .notFound, message: "partner.office_codes: no office \(code.prefix(8))")
                }
                var partner = input
                partner.id = env.newID("ptn")
                partner.active = true
                partner.createdAtUnixMs = env.nowUnixMs
                return try env.writer.create(partner, permission: .administer, context, tx)
            }
        }
    }

    func getPartner(
        _ request: Haven_V1_GetPartnerRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_PartnerOrganisation {
        let env = self.env
        return try await env.store.read { tx in
            let found = try tx.load(Haven_V1_PartnerOrganisation.self, id: request.partnerID)
            guard let view = env.policy.partner(found, id: request.partnerID, for: context.principal) else {
                throw AccessPolicy.notFound("partner")
            }
            return view
        }
    }

    func listPartners(
        _ request: Haven_V1_ListPartnersRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_ListPartnersResponse {
        try self.env.policy.check(context.principal, .readPartners)
        var filters = request
        filters.clearPage()
        var query = RecordQuery(order: .newestFirst, limit: PageToken.size(request.page))
        query.after = try PageToken.cursor(request.page, filters: filters)
        if request.kind != .unspecified { query.categories = [request.kind.rawValue] }
        // Office and service filters look inside the record: read on until the page is full.
        let page = try await self.env.store.read { [query] tx -> RecordPage<Haven_V1_PartnerOrganisation> in
            var query = query
            var matched: [Haven_V1_PartnerOrganisation] = []
            var next: PageCursor?
            while true {
                let batch = try tx.page(Haven_V1_PartnerOrganisation.self, query)
                for partner in batch.records {
                    guard
                        request.officeCodes.isEmpty || !Set(request.officeCodes).isDisjoint(with: partner.officeCodes),
                        request.service == .unspecified || partner.services.contains(request.service)
                    else { continue }
                    matched.append(partner)
                    if matched.count == query.limit {
                        next = PageCursor(sortKey: partner.createdAtUnixMs, id: partner.id)
                        break
                    }
                }
                if matched.count == query.limit || batch.next == nil { break }
                query.after = batch.next
            }
            if next != nil {
                // The page is full: is there anything after it?
                var probe = query
                probe.after = next
                probe.limit = 1
                if try tx.page(Haven_V1_PartnerOrganisation.self, probe).records.isEmpty { next = nil }
            }
            return RecordPage(records: matched, next: next)
        }
        var response = Haven_V1_ListPartnersResponse()
        response.partners = page.records
        response.page = try PageToken.token(after: page.next, filters: filters)
        return response
    }
}

extension PartnerService {
    func updatePartner(
        _ request: Haven_V1_UpdatePartnerRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_PartnerOrganisation {
        try self.environment.policy.check(context.principal, .administer)
        if !request.name.isEmpty { try Validate.text(request.name, "name") }
        if request.changeOffices {
            try Validate.require(!request.officeCodes.isEmpty, "office_codes", "at least one office")
        } else {
            try Validate.require(request.officeCodes.isEmpty, "office_codes", "set change_offices to change them")
        }
        if request.changeServices {
            for service in request.services { try Validate.known(service, "services") }
        } else {
            try Validate.require(request.services.isEmpty, "services", "set change_services to change them")
        }
        let env = self.environment
        return try await env.writer.transaction(context) { tx in
            if request.changeOffices {
                for code in request.officeCodes where try tx.load(Haven_V1_Office.self, id: code) == nil {
                    throw HavenError(code: .notFound, message: "office_codes: no office \(code.prefix(8))")
                }
            }
            return try env.writer.update(
                Haven_V1_PartnerOrganisation.self,
                id: request.partnerID,
                expected: .required(request.expectedVersion),
                permission: .administer,
                context,
                tx
            ) { partner, _ in
                if !request.name.isEmpty { partner.name = request.name }
                if !request.contact.isEmpty { partner.contact = request.contact }
                if request.changeOffices { partner.officeCodes = request.officeCodes }
                if request.changeServices { partner.services = request.services }
                return nil
            }
        }
    }

    /// Deactivates or reactivates an organisation. Deactivation advances the
    /// account revision, so every server ends its accounts' open connections
    /// within a second; handshakes and writes check the organisation too.
    func setActive(
        _ active: Bool,
        _ request: Haven_V1_SetPartnerActiveRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_PartnerOrganisation {
        try self.environment.policy.check(context.principal, .administer)
        try Validate.text(request.reason, "reason", required: false)
        let env = self.environment
        let detail = request.reason.isEmpty ? "" : "reason: \(LogText.escaped(request.reason, limit: 300))"
        return try await env.writer.transaction(context, detail: detail) { tx in
            let partner = try env.writer.update(
                Haven_V1_PartnerOrganisation.self,
                id: request.partnerID,
                expected: .required(request.expectedVersion),
                permission: .administer,
                context,
                tx
            ) { partner, _ in
                guard partner.active != active else {
                    throw HavenError(
                        code: .failedPrecondition,
                        message: "the organisation is already \(active ? "active" : "deactivated")"
                    )
                }
                partner.active = active
                return nil
            }
            _ = try tx.nextCounterValue(StoreCounters.accountRevision)
            return partner
        }
    }
}
