import HavenProtocol
import HavenStore

/// `haven.v1.OfficeService`: field offices.
struct OfficeService: OfficeServiceHandler {
    let environment: ServiceEnvironment

    private var env: ServiceEnvironment { self.environment }

    func createOffice(_ request: Haven_V1_CreateOfficeRequest, _ context: CallContext) async throws -> Haven_V1_Office {
        try self.env.policy.check(context.principal, .administer)
        let input = request.office
        try Validate.officeCode(input.code, "office.code")
        try Validate.text(input.name, "office.name")
        try Validate.text(input.city, "office.city")
        try Validate.country(input.country, "office.country")
        try Validate.timeZone(input.timeZone, "office.time_zone")
        let env = self.env
        let idempotency = try env.writer.idempotency(key: request.idempotencyKey, of: request)
        return try await env.writer.transaction(context) { tx in
            try env.writer.idempotent(context, idempotency, tx) {
                var office = Haven_V1_Office()
                office.code = input.code
                office.name = input.name
                office.city = input.city
                office.country = input.country
                office.timeZone = input.timeZone
                office.status = .active
                office.createdAtUnixMs = env.nowUnixMs
                do {
                    return try env.writer.create(office, permission: .administer, context, tx)
                } catch let error as HavenError where error.code == .alreadyExists {
                    throw HavenError(code: .alreadyExists, message: "office code \(input.code) is taken")
                }
            }
        }
    }

    func getOffice(_ request: Haven_V1_GetOfficeRequest, _ context: CallContext) async throws -> Haven_V1_Office {
        let env = self.env
        return try await env.store.read { tx in
            let office = try tx.load(Haven_V1_Office.self, id: request.code)
            guard let view = env.policy.office(office, code: request.code, for: context.principal) else {
                throw HavenError(code: .notFound, message: "no office with that code")
            }
            return view
        }
    }

    func listOffices(
        _ request: Haven_V1_ListOfficesRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_ListOfficesResponse {
        var filters = request
        filters.clearPage()
        var query = RecordQuery(order: .idAscending, limit: PageToken.size(request.page))
        query.after = try PageToken.cursor(request.page, filters: filters)
        if request.status != .unspecified { query.statuses = [request.status.rawValue] }
        query.ids = try self.env.policy.offices(context.principal, .readOffice, asked: [])
        let page = try await self.env.store.read { [query] in try $0.page(Haven_V1_Office.self, query) }
        var response = Haven_V1_ListOfficesResponse()
        response.offices = page.records
        response.page = try PageToken.token(after: page.next, filters: filters)
        return response
    }

    func updateOffice(_ request: Haven_V1_UpdateOfficeRequest, _ context: CallContext) async throws -> Haven_V1_Office {
        try self.env.policy.check(context.principal, .administer)
        if !request.name.isEmpty { try Validate.text(request.name, "name") }
        if !request.city.isEmpty { try Validate.text(request.city, "city") }
        if !request.timeZone.isEmpty { try Validate.timeZone(request.timeZone, "time_zone") }
        if request.hasRetention { try Self.validate(request.retention) }
        let env = self.env
        return try await env.writer.transaction(context) { tx in
            try env.writer.update(
                Haven_V1_Office.self,
                id: request.code,
                expected: .required(request.expectedVersion),
                permission: .administer,
                context,
                tx
            ) { office, _ in
                if !request.name.isEmpty { office.name = request.name }
                if !request.city.isEmpty { office.city = request.city }
                if !request.timeZone.isEmpty { office.timeZone = request.timeZone }
                if request.hasRetention { office.retention = request.retention }
                return nil
            }
        }
    }

    func closeOffice(_ request: Haven_V1_CloseOfficeRequest, _ context: CallContext) async throws -> Haven_V1_Office {
        try self.env.policy.check(context.principal, .administer)
        let env = self.env
        return try await env.writer.transaction(context) { tx in
            try env.writer.update(
                Haven_V1_Office.self,
                id: request.code,
                expected: .required(request.expectedVersion),
                permission: .administer,
                context,
                tx
            ) { office, now in
                guard office.status == .active else {
                    throw HavenError(code: .failedPrecondition, message: "office is already closed")
                }
                var open = RecordQuery(order: .newestFirst)
                open.officeCodes = [office.code]
                open.statuses = Haven_V1_CaseStatus.allCases.filter { $0 != .closed && $0 != .unspecified }.map(
                    \.rawValue
                )
                let openCases = try tx.count(Haven_V1_Case.self, open)
                guard openCases == 0 else {
                    throw HavenError(
                        code: .failedPrecondition,
                        message: "office has \(openCases) open cases; close or move them first"
                    )
                }
                office.status = .closed
                office.closedAtUnixMs = now
                return nil
            }
        }
    }

    static func validate(_ retention: Haven_V1_RetentionPolicy) throws(HavenError) {
        try Validate.require(
            retention.identityYearsAfterClosure <= 100,
            "retention.identity_years_after_closure",
            "at most 100"
        )
        try Validate.require(
            retention.caseNotesYearsAfterClosure <= 100,
            "retention.case_notes_years_after_closure",
            "at most 100"
        )
    }

    func previewRetention(
        _ request: Haven_V1_PreviewRetentionRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_RetentionPlan {
        try Validate.officeCode(request.officeCode, "office_code")
        try self.env.policy.check(context.principal, .previewRetention, office: request.officeCode)
        let now = self.env.nowUnixMs
        return try await self.env.store.read { tx in
            guard let office = try tx.load(Haven_V1_Office.self, id: request.officeCode) else {
                throw HavenError(code: .notFound, message: "no office with that code")
            }
            var plan = Haven_V1_RetentionPlan()
            plan.items = try Retention.plan(office, now: now, tx)
            plan.asOfUnixMs = now
            return plan
        }
    }

    func rotateKeys(
        _ request: Haven_V1_RotateKeysRequest,
        _ context: CallContext
    ) async throws
        -> Haven_V1_RotateKeysResponse
    {
        try self.env.policy.check(context.principal, .administer)
        for code in request.officeCodes { try Validate.officeCode(code, "office_codes") }
        let env = self.env
        let writer = env.writer
        let offices = Array(Set(request.officeCodes)).sorted()
        return try await env.keys.rotate(env.store, offices: offices) { tx, rotation, fingerprint in
            try env.policy.requireCurrent(context.principal, tx)
            for code in offices where try tx.load(Haven_V1_Office.self, id: code) == nil {
                throw HavenError(code: .notFound, message: "office_codes: no office \(code)")
            }
            var resources: [Haven_V1_AuditResource] = []
            var master = Haven_V1_AuditResource()
            master.kind = "master_key"
            master.id = fingerprint
            resources.append(master)
            for code in offices {
                var office = Haven_V1_AuditResource()
                office.kind = "office_key"
                office.id = code
                office.officeCode = code
                resources.append(office)
            }
            var entry = writer.entry(
                context,
                outcome: .ok,
                detail:
                    "\(rotation.officesRotated) office keys rotated, \(rotation.recordKeysRewrapped) record keys re-wrapped"
            )
            entry.resources = resources
            try tx.appendAudit(entry)
            var response = Haven_V1_RotateKeysResponse()
            response.masterKeyFingerprint = fingerprint
            response.officesRotated = UInt32(rotation.officesRotated)
            response.recordKeysRewrapped = UInt32(rotation.recordKeysRewrapped)
            return response
        }
    }
}
