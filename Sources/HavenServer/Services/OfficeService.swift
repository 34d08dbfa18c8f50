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
        let env = self.env
        return try await env.store.write { tx in
            try env.writer.idempotent(context, key: request.idempotencyKey, request: request, tx) {
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

    func get(_ request: Haven_V1_GetOfficeRequest, _ context: CallContext) async throws -> Haven_V1_Office {
        let env = self.env
        return try await env.store.read { tx in
            let office = try tx.load(Haven_V1_Office.self, id: request.code)
            guard let view = env.policy.office(office, code: request.code, for: context.principal) else {
                throw HavenError(code: .notFound, message: "no office with that code")
            }
            return view
        }
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
        query.ids = try self.env.policy.offices(context.principal, .readOffice, asked: [])
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
        let env = self.env
        return try await env.store.write { tx in
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
                return nil
            }
        }
    }

    func close(_ request: Haven_V1_CloseOfficeRequest, _ context: CallContext) async throws -> Haven_V1_Office {
        try self.env.policy.check(context.principal, .administer)
        let env = self.env
        return try await env.store.write { tx in
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
}
