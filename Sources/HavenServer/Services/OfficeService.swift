import HavenProtocol
import HavenStore

/// `haven.v1.OfficeService`: field offices.
struct OfficeService {
    let environment: ServiceEnvironment

    func register(into router: inout Router) {
        router.register(MethodCatalog.OfficeService.createOffice, self.create)
        router.register(MethodCatalog.OfficeService.getOffice, self.get)
        router.register(MethodCatalog.OfficeService.listOffices, self.list)
        router.register(MethodCatalog.OfficeService.updateOffice, self.update)
        router.register(MethodCatalog.OfficeService.closeOffice, self.close)
    }

    private var env: ServiceEnvironment { self.environment }

    func create(_ request: Haven_V1_CreateOfficeRequest, _ context: CallContext) async throws -> Haven_V1_Office {
        try self.env.policy.check(context.principal, .administer)
        let input = request.office
        try Validate.officeCode(input.code, "office.code")
        try Validate.text(input.name, "office.name")
        try Validate.text(input.city, "office.city")
        try Validate.country(input.country, "office.country")
        try Validate.timeZone(input.timeZone, "office.time_zone")
        try Validate.idempotencyKey(request.idempotencyKey)
        let now = self.env.nowUnixMs
        let env = self.env
        return try await env.store.write { tx in
            try env.idempotent(tx, context: context, key: request.idempotencyKey, request: request) {
                var office = Haven_V1_Office()
                office.code = input.code
                office.name = input.name
                office.city = input.city
                office.country = input.country
                office.timeZone = input.timeZone
                office.status = .active
                office.version = 1
                office.createdAtUnixMs = now
                office.updatedAtUnixMs = now
                do {
                    try tx.insert(office)
                } catch let error as HavenError where error.code == .alreadyExists {
                    throw HavenError(code: .alreadyExists, message: "office code \(input.code) is taken")
                }
                try env.recordChange(tx, .created, officeCode: office.code, at: now) { $0.office = office }
                return office
            }
        }
    }

    func get(_ request: Haven_V1_GetOfficeRequest, _ context: CallContext) async throws -> Haven_V1_Office {
        try self.env.policy.checkVisible(context.principal, .readOffice(request.code), what: "office")
        guard let office = try await self.env.store.read({ try $0.load(Haven_V1_Office.self, id: request.code) }) else {
            throw HavenError(code: .notFound, message: "no office with that code")
        }
        return office
    }

    func list(
        _ request: Haven_V1_ListOfficesRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_ListOfficesResponse {
        var filters = request
        filters.clearPage()
        var query = RecordQuery(order: .idAscending, limit: PageToken.size(request.page))
        query.after = try PageToken.cursor(request.page, filters: filters)
        if request.status != .unspecified { query.statuses = [request.status.rawValue] }
        if context.principal.role != .admin { query.ids = context.principal.account.officeCodes }
        let page = try await self.env.store.read { [query] in try $0.page(Haven_V1_Office.self, query) }
        var response = Haven_V1_ListOfficesResponse()
        response.offices = page.records
        response.page = try PageToken.token(after: page.next, filters: filters)
        return response
    }

    func update(_ request: Haven_V1_UpdateOfficeRequest, _ context: CallContext) async throws -> Haven_V1_Office {
        try self.env.policy.check(context.principal, .administer)
        if !request.name.isEmpty { try Validate.text(request.name, "name") }
        if !request.city.isEmpty { try Validate.text(request.city, "city") }
        if !request.timeZone.isEmpty { try Validate.timeZone(request.timeZone, "time_zone") }
        return try await self.mutate(request.code, request.expectedVersion) { office in
            if !request.name.isEmpty { office.name = request.name }
            if !request.city.isEmpty { office.city = request.city }
            if !request.timeZone.isEmpty { office.timeZone = request.timeZone }
        }
    }

    func close(_ request: Haven_V1_CloseOfficeRequest, _ context: CallContext) async throws -> Haven_V1_Office {
        try self.env.policy.check(context.principal, .administer)
        let now = self.env.nowUnixMs
        return try await self.mutate(request.code, request.expectedVersion) { office, tx in
            guard office.status == .active else {
                throw HavenError(code: .failedPrecondition, message: "office is already closed")
            }
            var open = RecordQuery(order: .newestFirst)
            open.officeCodes = [office.code]
            open.statuses = Haven_V1_CaseStatus.allCases.filter { $0 != .closed && $0 != .unspecified }.map(\.rawValue)
            let openCases = try tx.count(Haven_V1_Case.self, open)
            guard openCases == 0 else {
                throw HavenError(
                    code: .failedPrecondition,
                    message: "office has \(openCases) open cases; close or move them first"
                )
            }
            office.status = .closed
            office.closedAtUnixMs = now
        }
    }

    private func mutate(
        _ code: String,
        _ expectedVersion: UInt64,
        _ change: @escaping @Sendable (inout Haven_V1_Office) throws -> Void
    ) async throws -> Haven_V1_Office {
        try await self.mutate(code, expectedVersion) { office, _ in try change(&office) }
    }

    private func mutate(
        _ code: String,
        _ expectedVersion: UInt64,
        _ change: @escaping @Sendable (inout Haven_V1_Office, any StoreWriter) throws -> Void
    ) async throws -> Haven_V1_Office {
        let env = self.env
        let now = env.nowUnixMs
        return try await env.store.write { tx in
            guard var office = try tx.load(Haven_V1_Office.self, id: code) else {
                throw HavenError(code: .notFound, message: "no office with that code")
            }
            try env.requireVersion(expectedVersion, current: office.version)
            try change(&office, tx)
            office.version += 1
            office.updatedAtUnixMs = now
            try tx.update(office, expectedVersion: expectedVersion)
            try env.recordChange(tx, .updated, officeCode: office.code, at: now) { $0.office = office }
            return office
        }
    }
}
