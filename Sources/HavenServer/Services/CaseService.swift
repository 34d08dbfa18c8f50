import HavenProtocol
import HavenStore

/// `haven.v1.CaseService`: cases, their timelines and the accused.
struct CaseService: CaseServiceHandler {
    let environment: ServiceEnvironment

    private var env: ServiceEnvironment { self.environment }

    func openCase(_ request: Haven_V1_OpenCaseRequest, _ context: CallContext) async throws -> Haven_V1_Case {
        try self.env.policy.check(context.principal, .writeRecords, office: request.officeCode)
        try Validate.known(request.category, "category")
        try Validate.text(request.title, "title")
        try Validate.text(request.policeReference, "police_reference", required: false)
        if request.status != .unspecified {
            try Validate.known(request.status, "status")
            try Validate.require(request.status != .closed, "status", "a case cannot be opened closed")
        }
        let env = self.env
        let idempotency = try env.writer.idempotency(key: request.idempotencyKey, of: request)
        return try await env.writer.transaction(context) { tx in
            try env.writer.idempotent(context, idempotency, tx) {
                let office = try Self.activeOffice(request.officeCode, tx)
                let now = env.nowUnixMs
                let openedOn = CivilDates.date(unixMs: now, timeZone: office.timeZone)
                let number = try tx.nextCounterValue("case:\(office.code):\(openedOn.year)")
                var record = Haven_V1_Case()
                record.id = env.newID("case")
                record.reference = "\(office.code)-\(openedOn.year)-\(Self.padded(number))"
                record.officeCode = office.code
                record.category = request.category
                record.status = request.status == .unspecified ? .intake : request.status
                record.title = request.title
                record.policeReference = request.policeReference
                record.openedAtUnixMs = now
                record.openedOn = openedOn
                record.openedBy = context.principal.actor
                return try env.writer.create(record, permission: .office(.writeRecords), context, tx)
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

    func getCase(_ request: Haven_V1_GetCaseRequest, _ context: CallContext) async throws -> Haven_V1_Case {
        let env = self.env
        return try await env.store.read { tx in
            let found: Haven_V1_Case? =
                switch request.key {
                case .caseID(let id): try tx.load(Haven_V1_Case.self, id: id)
                case .reference(let reference): try tx.load(Haven_V1_Case.self, alias: reference)
                case .none: throw HavenError.invalidField("key", "case_id or reference required")
                }
            guard let view = env.policy.caseRecord(found, for: context.principal) else {
                throw AccessPolicy.notFound("case")
            }
            return try CaseReads.withLatest(view, tx)
        }
    }

    func listCaseEvents(
        _ request: Haven_V1_ListCaseEventsRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_ListCaseEventsResponse {
        try Validate.require(!request.caseID.isEmpty, "case_id", "required")
        let paging = try HistoryPaging(request)
        let env = self.env
        let (record, events) = try await env.store.read { tx in
            let view = try Self.readable(request.caseID, context, env, tx)
            return (view, try tx.caseEvents(.timeline(view.id, after: paging.after, limit: paging.limit)).map(\.event))
        }
        let page = try paging.page(events, place: \.sequence)
        var response = Haven_V1_ListCaseEventsResponse()
        response.events = page.elements
        response.eventCount = record.eventCount
        response.page = page.info
        return response
    }

    func listAccusedHistory(
        _ request: Haven_V1_ListAccusedHistoryRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_ListAccusedHistoryResponse {
        try Validate.identifier(request.caseID, "case_id")
        try Validate.identifier(request.accusedID, "accused_id")
        let paging = try HistoryPaging(request)
        let env = self.env
        let (accused, history) = try await env.store.read { tx in
            let view = try Self.readable(request.caseID, context, env, tx)
            // Only an accused of this very case: its access is the case's.
            guard let accused = view.accused.first(where: { $0.id == request.accusedID }) else {
                throw HavenError(code: .notFound, message: "no accused with that id in the case")
            }
            let query = AccusedHistoryQuery(accused.id, after: paging.after, limit: paging.limit)
            return (accused, try tx.accusedHistory(query)[accused.id] ?? [])
        }
        let page = try paging.page(history, place: \.sequence)
        var response = Haven_V1_ListAccusedHistoryResponse()
        response.history = page.elements
        response.historyCount = accused.historyCount
        response.page = page.info
        return response
    }

    func listCases(
        _ request: Haven_V1_ListCasesRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_ListCasesResponse {
        var filters = request
        filters.clearPage()
        var query = RecordQuery(order: .newestFirst, limit: PageToken.size(request.page))
        query.after = try PageToken.cursor(request.page, filters: filters)
        query.officeCodes = try self.env.policy.offices(context.principal, .readRecords, asked: request.officeCodes)
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
        let page = try await self.env.store.read { [query] tx in
            try tx.page(Haven_V1_Case.self, query).map { record in
                guard request.view == .full else {
                    var basic = record
                    basic.accused = []
                    return basic
                }
                return try CaseReads.withLatest(record, tx)
            }
        }
        .bounded(order: query.order)
        var response = Haven_V1_ListCasesResponse()
        response.cases = page.records
        response.page = try PageToken.token(after: page.next, filters: filters)
        return response
    }

    func updateCase(_ request: Haven_V1_UpdateCaseRequest, _ context: CallContext) async throws -> Haven_V1_Case {
        if request.category != .unspecified { try Validate.known(request.category, "category") }
        if !request.title.isEmpty { try Validate.text(request.title, "title") }
        try Validate.text(request.policeReference, "police_reference", required: false)
        return try await self.mutate(request.caseID, .required(request.expectedVersion), context) { record, _, _ in
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

    func updateCaseStatus(
        _ request: Haven_V1_UpdateCaseStatusRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_Case {
        try Validate.known(request.status, "status")
        try Validate.text(request.reason, "reason")
        let env = self.env
        return try await self.mutate(request.caseID, .required(request.expectedVersion), context) { record, tx, now in
            guard record.status != request.status else {
                throw HavenError(code: .failedPrecondition, message: "case is already in that status")
            }
            let office = try tx.load(Haven_V1_Office.self, id: record.officeCode)
            var event = Haven_V1_CaseEvent()
            event.occurredOn = CivilDates.date(unixMs: now, timeZone: office?.timeZone ?? "UTC")
            event.statusChanged.previousStatus = record.status
            event.statusChanged.newStatus = request.status
            event.statusChanged.reason = request.reason
            Self.append(event, to: &record, id: env.newEventID(), actor: context.principal.actor, now: now)
            record.status = request.status
            record.closedAtUnixMs = request.status == .closed ? now : 0
        }
    }

    func addAccused(_ request: Haven_V1_AddAccusedRequest, _ context: CallContext) async throws -> Haven_V1_Case {
        let input = request.accused
        try Validate.text(input.name, "accused.name")
        try Validate.known(input.role, "accused.role")
        for alias in input.aliases { try Validate.text(alias, "accused.aliases") }
        if input.legalStatus != .unspecified {
            try Validate.require(
                Haven_V1_AccusedLegalStatus(rawValue: input.legalStatus.rawValue) != nil,
                "accused.legal_status",
                "unknown"
            )
        }
        let env = self.env
        let idempotency = try env.writer.idempotency(key: request.idempotencyKey, of: request)
        return try await env.writer.transaction(context) { tx in
            try env.writer.idempotent(context, idempotency, tx) {
                try Self.mutate(request.caseID, .required(request.expectedVersion), context, env, tx) {
                    record,
                    tx,
                    now in
                    guard record.status != .closed else {
                        throw HavenError(code: .failedPrecondition, message: "case is closed")
                    }
                    let office = try tx.load(Haven_V1_Office.self, id: record.officeCode)
                    var accused = Haven_V1_Accused()
                    accused.id = env.newID("acc")
                    accused.name = input.name
                    accused.aliases = input.aliases
                    accused.role = input.role
                    var change = Haven_V1_AccusedStatusChange()
                    change.status = input.legalStatus == .unspecified ? .atLarge : input.legalStatus
                    change.effectiveOn = CivilDates.date(unixMs: now, timeZone: office?.timeZone ?? "UTC")
                    accused.record(change)
                    record.accused.append(accused)
                }
            }
        }
    }

    func linkSurvivor(_ request: Haven_V1_LinkSurvivorRequest, _ context: CallContext) async throws -> Haven_V1_Case {
        try Validate.identifier(request.survivorID, "survivor_id")
        let env = self.env
        return try await env.writer.transaction(context) { tx in
            // Linking again changes nothing (a retry after a lost response is safe).
            if let current = env.policy.caseRecord(
                try tx.load(Haven_V1_Case.self, id: request.caseID),
                for: context.principal
            ),
                current.survivorIds.contains(request.survivorID), current.version == request.expectedVersion
            {
                return current
            }
            var survivor: Haven_V1_Survivor?
            let record = try Self.mutate(request.caseID, .required(request.expectedVersion), context, env, tx) {
                record,
                tx,
                _ in
                let found = try tx.load(Haven_V1_Survivor.self, id: request.survivorID)
                guard
                    let found = try env.policy.survivor(
                        found,
                        id: request.survivorID,
                        for: context.principal,
                        in: tx,
                        now: env.nowUnixMs
                    )
                else {
                    throw AccessPolicy.notFound("survivor")
                }
                guard found.officeCode == record.officeCode else {
                    throw HavenError(
                        code: .failedPrecondition,
                        message: "the survivor and the case belong to different offices"
                    )
                }
                guard !record.survivorIds.contains(found.id) else {
                    throw HavenError(code: .failedPrecondition, message: "the survivor is already linked to this case")
                }
                record.survivorIds.append(found.id)
                survivor = found
            }
            if var survivor {
                try env.writer.follow(&survivor, tx) { $0.caseIds.append(record.id) }
            }
            return record
        }
    }

    // MARK: Shared

    /// The case as the caller may read it (the access policy's view);
    /// NOT_FOUND when they may not, whether it exists or not.
    private static func readable(
        _ caseID: String,
        _ context: CallContext,
        _ env: ServiceEnvironment,
        _ tx: any StoreReader
    ) throws -> Haven_V1_Case {
        guard let view = env.policy.caseRecord(try tx.load(Haven_V1_Case.self, id: caseID), for: context.principal)
        else {
            throw AccessPolicy.notFound("case")
        }
        return view
    }

    /// Changes a case the caller may write, through the record writer.
    private func mutate(
        _ caseID: String,
        _ expected: ExpectedVersion,
        _ context: CallContext,
        _ change: @escaping @Sendable (inout Haven_V1_Case, any StoreWriter, Int64) throws -> Void
    ) async throws -> Haven_V1_Case {
        let env = self.env
        return try await env.writer.transaction(context) { tx in
            try Self.mutate(caseID, expected, context, env, tx, change)
        }
    }

    static func mutate(
        _ caseID: String,
        _ expected: ExpectedVersion,
        _ context: CallContext,
        _ env: ServiceEnvironment,
        _ tx: any StoreWriter,
        _ change: (inout Haven_V1_Case, any StoreWriter, Int64) throws -> Void
    ) throws -> Haven_V1_Case {
        try env.writer.update(
            Haven_V1_Case.self,
            id: caseID,
            expected: expected,
            permission: .office(.writeRecords),
            context,
            tx
        ) { record, now in
            try change(&record, tx, now)
            return nil
        }
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
        // The record holds the events this change appends (the store keeps
        // the timeline as rows of its own); `event_count` counts them all.
        event.sequence = record.eventCount + 1
        event.recordedAtUnixMs = now
        event.recordedBy = actor
        record.events.append(event)
        record.eventCount = event.sequence
    }
}

/// How a case is read: the one assembly of a case, its timeline and its
/// accused's histories, for the services and for anything that serves the
/// same read.
package enum CaseReads {
    /// A case as a read returns it: its record, the latest events of its
    /// timeline (at most ``HavenLimits/caseEventsInline`` of them and
    /// ``HavenLimits/caseEventsInlineBytes``, always the last one, oldest
    /// first), and each accused's latest status changes
    /// (``withLatestHistories(_:_:)``).
    package static func withLatest(_ record: Haven_V1_Case, _ tx: any StoreReader) throws -> Haven_V1_Case {
        var assembled = try Self.withLatestHistories(record, tx)
        guard record.eventCount > 0 else { return assembled }
        var query = CaseEventQuery.timeline(record.id, limit: HavenLimits.caseEventsInline)
        query.newestFirst = true
        let events = try tx.caseEvents(query).map(\.event)
        let latest = boundedPrefix(
            events,
            count: HavenLimits.caseEventsInline,
            bytes: HavenLimits.caseEventsInlineBytes
        )
        assembled.events = latest.reversed()
        return assembled
    }

    /// A case with each accused's latest status changes, oldest first: at
    /// most ``HavenLimits/accusedHistoryInline`` of each, and
    /// ``HavenLimits/accusedHistoryInlineBytes`` for them all, taken round by
    /// round (every accused's latest change, then every accused's one
    /// before, …) until one does not fit.
    package static func withLatestHistories(
        _ record: Haven_V1_Case,
        _ tx: any StoreReader
    ) throws -> Haven_V1_Case {
        let ids = record.accused.filter { $0.historyCount > 0 }.map(\.id)
        guard !ids.isEmpty else { return record }
        let latest = try tx.accusedHistory(.latest(of: ids, limit: HavenLimits.accusedHistoryInline))
        var taken: [String: Int] = [:]
        var budget = HavenLimits.accusedHistoryInlineBytes
        rounds: for round in 0..<HavenLimits.accusedHistoryInline {
            var more = false
            for id in ids {
                guard let changes = latest[id], round < changes.count else { continue }
                budget -= changes[round].wireSize  // counted, not encoded
                guard budget >= 0 else { break rounds }
                taken[id] = round + 1
                more = true
            }
            if !more { break }
        }
        var assembled = record
        for index in assembled.accused.indices {
            let id = assembled.accused[index].id
            assembled.accused[index].history = (latest[id] ?? []).prefix(taken[id] ?? 0).reversed()
        }
        return assembled
    }
}
