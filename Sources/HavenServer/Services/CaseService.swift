import HavenProtocol
import HavenStore

/// `haven.v1.CaseService`: cases, their timelines and the accused.
struct CaseService {
    let environment: ServiceEnvironment

    func register(into router: inout Router) {
        router.register(MethodCatalog.CaseService.openCase, self.open)
        router.register(MethodCatalog.CaseService.getCase, self.get)
        router.register(MethodCatalog.CaseService.listCases, self.list)
        router.register(MethodCatalog.CaseService.updateCase, self.update)
        router.register(MethodCatalog.CaseService.updateCaseStatus, self.updateStatus)
        router.register(MethodCatalog.CaseService.appendCaseEvent, self.appendEvent)
        router.register(MethodCatalog.CaseService.addAccused, self.addAccused)
        router.register(MethodCatalog.CaseService.linkSurvivor, self.linkSurvivor)
    }

    private var env: ServiceEnvironment { self.environment }

    func open(_ request: Haven_V1_OpenCaseRequest, _ context: CallContext) async throws -> Haven_V1_Case {
        try self.env.policy.check(context.principal, .writeOfficeRecords(request.officeCode))
        try Validate.known(request.category, "category")
        try Validate.text(request.title, "title")
        try Validate.text(request.policeReference, "police_reference", required: false, maxBytes: 100)
        if request.status != .unspecified {
            try Validate.known(request.status, "status")
            try Validate.require(request.status != .closed, "status", "a case cannot be opened closed")
        }
        let env = self.env
        let now = env.nowUnixMs
        return try await env.store.write { tx in
            try env.idempotent(tx, context: context, key: request.idempotencyKey, request: request) {
                let office = try Self.activeOffice(request.officeCode, tx)
                let openedOn = CivilDates.date(unixMs: now, timeZone: office.timeZone)
                let number = try tx.nextCounterValue("case:\(office.code):\(openedOn.year)")
                var record = Haven_V1_Case()
                record.id = env.newID("case")
                record.reference = "\(office.code)-\(openedOn.year)-\(Self.padded(number))"
                record.officeCode = office.code
                record.version = 1
                record.category = request.category
                record.status = request.status == .unspecified ? .intake : request.status
                record.title = request.title
                record.policeReference = request.policeReference
                record.openedAtUnixMs = now
                record.updatedAtUnixMs = now
                record.openedOn = openedOn
                record.openedBy = context.principal.actor
                try tx.insert(record)
                try env.recordChange(tx, .created, officeCode: office.code, at: now) { $0.caseRecord = record }
                return record
            }
        }
    }

    static func padded(_ number: UInt64) -> String {
        let digits = String(number)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    static func activeOffice(_ code: String, _ tx: any StoreReader) throws -> Haven_V1_Office {
        guard let office = try tx.load(Haven_V1_Office.self, id: code) else {
            throw HavenError(code: .notFound, message: "no office with that code")
        }
        guard office.status == .active else {
            throw HavenError(code: .failedPrecondition, message: "office \(code) is closed")
        }
        return office
    }

    func get(_ request: Haven_V1_GetCaseRequest, _ context: CallContext) async throws -> Haven_V1_Case {
        let found = try await self.env.store.read { tx -> Haven_V1_Case? in
            switch request.key {
            case .caseID(let id): try tx.load(Haven_V1_Case.self, id: id)
            case .reference(let reference): try tx.load(Haven_V1_Case.self, alias: reference)
            case .none: throw HavenError.invalidField("key", "case_id or reference required")
            }
        }
        guard let found else { throw HavenError(code: .notFound, message: "no case with that id") }
        try self.env.policy.checkVisible(context.principal, .readOfficeRecords(found.officeCode), what: "case")
        return found
    }

    func list(_ request: Haven_V1_ListCasesRequest, _ context: CallContext) async throws -> Haven_V1_ListCasesResponse {
        var filters = request
        filters.clearPage()
        var query = RecordQuery(order: .newestFirst, limit: PageToken.size(request.page))
        query.after = try PageToken.cursor(request.page, filters: filters)
        query.officeCodes = try self.visibleOffices(request.officeCodes, context)
        if !request.statuses.isEmpty { query.statuses = request.statuses.map(\.rawValue) }
        if !request.categories.isEmpty { query.categories = request.categories.map(\.rawValue) }
        if request.opened.hasFirstDay {
            try Validate.date(request.opened.firstDay, "opened.first_day")
            query.dayFrom = dayString(request.opened.firstDay)
        }
        if request.opened.hasLastDay {
            try Validate.date(request.opened.lastDay, "opened.last_day")
            query.dayTo = dayString(request.opened.lastDay)
        }
        if request.updatedSinceUnixMs > 0 { query.updatedSince = request.updatedSinceUnixMs }
        let page = try await self.env.store.read { [query] in try $0.page(Haven_V1_Case.self, query) }
        var response = Haven_V1_ListCasesResponse()
        response.cases = page.records.map { record in
            guard request.view != .full else { return record }
            var basic = record
            basic.events = []
            basic.accused = []
            return basic
        }
        response.page = try PageToken.token(after: page.next, filters: filters)
        return response
    }

    /// The offices a list may cover: those asked for (each must be visible),
    /// or every office the caller works in.
    func visibleOffices(_ asked: [String], _ context: CallContext) throws -> [String] {
        let mine = context.principal.account.officeCodes.filter {
            self.env.policy.allows(context.principal, .readOfficeRecords($0))
        }
        guard !asked.isEmpty else {
            guard !mine.isEmpty else {
                throw HavenError(
                    code: .permissionDenied,
                    message: "\(context.principal.role.name) has no office records"
                )
            }
            return mine
        }
        for code in asked { try self.env.policy.check(context.principal, .readOfficeRecords(code)) }
        return asked
    }

    func update(_ request: Haven_V1_UpdateCaseRequest, _ context: CallContext) async throws -> Haven_V1_Case {
        if request.category != .unspecified { try Validate.known(request.category, "category") }
        if !request.title.isEmpty { try Validate.text(request.title, "title") }
        try Validate.text(request.policeReference, "police_reference", required: false, maxBytes: 100)
        return try await self.mutate(request.caseID, request.expectedVersion, context) { record, _, _ in
            guard record.status != .closed else {
                throw HavenError(
                    code: .failedPrecondition,
                    message: "case is closed; reopen it with a status change first"
                )
            }
            if request.category != .unspecified { record.category = request.category }
            if !request.title.isEmpty { record.title = request.title }
            if !request.policeReference.isEmpty { record.policeReference = request.policeReference }
        }
    }

    func updateStatus(_ request: Haven_V1_UpdateCaseStatusRequest, _ context: CallContext) async throws -> Haven_V1_Case
    {
        try Validate.known(request.status, "status")
        try Validate.text(request.reason, "reason", maxBytes: 500)
        let env = self.env
        return try await self.mutate(request.caseID, request.expectedVersion, context) { record, tx, now in
            guard record.status != request.status else {
                throw HavenError(code: .failedPrecondition, message: "case is already in that status")
            }
            let office = try tx.load(Haven_V1_Office.self, id: record.officeCode)
            var event = Haven_V1_CaseEvent()
            event.occurredOn = CivilDates.date(unixMs: now, timeZone: office?.timeZone ?? "UTC")
            event.statusChanged.previousStatus = record.status
            event.statusChanged.newStatus = request.status
            event.statusChanged.reason = request.reason
            Self.append(event, to: &record, id: env.newID("evt"), actor: context.principal.actor, now: now)
            record.status = request.status
            record.closedAtUnixMs = request.status == .closed ? now : 0
        }
    }

    func addAccused(_ request: Haven_V1_AddAccusedRequest, _ context: CallContext) async throws -> Haven_V1_Case {
        let input = request.accused
        try Validate.text(input.name, "accused.name")
        try Validate.known(input.role, "accused.role")
        try Validate.require(input.aliases.count <= 20, "accused.aliases", "at most 20")
        for alias in input.aliases { try Validate.text(alias, "accused.aliases") }
        if input.legalStatus != .unspecified {
            try Validate.require(
                Haven_V1_AccusedLegalStatus(rawValue: input.legalStatus.rawValue) != nil,
                "accused.legal_status",
                "unknown"
            )
        }
        let env = self.env
        return try await env.store.write { tx in
            try env.idempotent(tx, context: context, key: request.idempotencyKey, request: request) {
                try Self.mutate(request.caseID, request.expectedVersion, context, env, tx) { record, tx, now in
                    guard record.status != .closed else {
                        throw HavenError(code: .failedPrecondition, message: "case is closed")
                    }
                    let office = try tx.load(Haven_V1_Office.self, id: record.officeCode)
                    var accused = Haven_V1_Accused()
                    accused.id = env.newID("acc")
                    accused.name = input.name
                    accused.aliases = input.aliases
                    accused.role = input.role
                    accused.legalStatus = input.legalStatus == .unspecified ? .atLarge : input.legalStatus
                    var change = Haven_V1_AccusedStatusChange()
                    change.status = accused.legalStatus
                    change.effectiveOn = CivilDates.date(unixMs: now, timeZone: office?.timeZone ?? "UTC")
                    accused.history = [change]
                    record.accused.append(accused)
                }
            }
        }
    }

    func linkSurvivor(_ request: Haven_V1_LinkSurvivorRequest, _ context: CallContext) async throws -> Haven_V1_Case {
        try Validate.identifier(request.survivorID, "survivor_id")
        let env = self.env
        return try await env.store.write { tx in
            guard let current = try tx.load(Haven_V1_Case.self, id: request.caseID) else {
                throw HavenError(code: .notFound, message: "no case with that id")
            }
            try env.policy.checkVisible(context.principal, .readOfficeRecords(current.officeCode), what: "case")
            try env.policy.check(context.principal, .writeOfficeRecords(current.officeCode))
            try env.requireVersion(request.expectedVersion, current: current.version)
            guard var survivor = try tx.load(Haven_V1_Survivor.self, id: request.survivorID),
                env.policy.allows(context.principal, .readOfficeRecords(survivor.officeCode))
            else {
                throw HavenError(code: .notFound, message: "no survivor with that id")
            }
            guard survivor.officeCode == current.officeCode else {
                throw HavenError(
                    code: .failedPrecondition,
                    message: "the survivor and the case belong to different offices"
                )
            }
            if current.survivorIds.contains(survivor.id) { return current }
            let now = env.nowUnixMs
            var record = current
            record.survivorIds.append(survivor.id)
            record.version += 1
            record.updatedAtUnixMs = now
            try tx.update(record, expectedVersion: current.version)
            try env.recordChange(tx, .updated, officeCode: record.officeCode, at: now) { $0.caseRecord = record }
            try env.saveSurvivor(tx, &survivor, at: now) { $0.caseIds.append(record.id) }
            return record
        }
    }

    // MARK: Shared

    /// Loads a case the caller may write, checks the version, applies
    /// `change`, bumps the version and records the change.
    private func mutate(
        _ caseID: String,
        _ expectedVersion: UInt64,
        _ context: CallContext,
        optionalVersion: Bool = false,
        _ change: @escaping @Sendable (inout Haven_V1_Case, any StoreWriter, Int64) throws -> Void
    ) async throws -> Haven_V1_Case {
        let env = self.env
        return try await env.store.write { tx in
            try Self.mutate(caseID, expectedVersion, context, env, tx, optionalVersion: optionalVersion, change)
        }
    }

    static func mutate(
        _ caseID: String,
        _ expectedVersion: UInt64,
        _ context: CallContext,
        _ env: ServiceEnvironment,
        _ tx: any StoreWriter,
        optionalVersion: Bool = false,
        _ change: (inout Haven_V1_Case, any StoreWriter, Int64) throws -> Void
    ) throws -> Haven_V1_Case {
        guard var record = try tx.load(Haven_V1_Case.self, id: caseID) else {
            throw HavenError(code: .notFound, message: "no case with that id")
        }
        try env.policy.checkVisible(context.principal, .readOfficeRecords(record.officeCode), what: "case")
        try env.policy.check(context.principal, .writeOfficeRecords(record.officeCode))
        try env.requireVersion(expectedVersion, current: record.version, optional: optionalVersion)
        let stored = record.version
        let now = env.nowUnixMs
        try change(&record, tx, now)
        record.version = stored + 1
        record.updatedAtUnixMs = now
        try tx.update(record, expectedVersion: stored)
        try env.recordChange(tx, .updated, officeCode: record.officeCode, at: now) { $0.caseRecord = record }
        return record
    }

    /// Appends a timeline event with its server-set fields.
    static func append(
        _ event: Haven_V1_CaseEvent,
        to record: inout Haven_V1_Case,
        id: String,
        actor: Haven_V1_Actor,
        now: Int64
    ) {
        var event = event
        event.id = id
        event.sequence = UInt32(record.events.count + 1)
        event.recordedAtUnixMs = now
        event.recordedBy = actor
        record.events.append(event)
        record.eventCount = UInt32(record.events.count)
    }
}
