import HavenProtocol

extension Representative {
    /// The write the end-to-end benchmarks and the call profiler measure: a
    /// dated note (fictional) appended to a case's timeline.
    public static func append(caseID: String, note: String) -> Haven_V1_AppendCaseEventRequest {
        var append = Haven_V1_AppendCaseEventRequest()
        append.caseID = caseID
        append.event.occurredOn = Self.date(2026, 4, 2)
        append.event.note.text = note
        return append
    }
}

extension Representative {
    /// A survivor registered for the benchmarks (its identity fictional).
    public static func survivor(number: Int) -> Haven_V1_RegisterSurvivorRequest {
        var register = Haven_V1_RegisterSurvivorRequest()
        register.officeCode = "KOL"
        register.ageAtIntake = 16
        register.intakeOn = Self.date(2026, 1, 10)
        register.identity.legalName = "Benchmark Survivor \(number) (fictional)"
        return register
    }

    /// A service delivered to a survivor, with a detail (fictional), as a
    /// benchmark records it.
    public static func service(survivorID: String, detail: String) -> Haven_V1_RecordServiceRequest {
        var record = Haven_V1_RecordServiceRequest()
        record.survivorID = survivorID
        record.service.kind = .counselling
        record.service.deliveredOn = Self.date(2026, 4, 2)
        record.service.detail = detail
        return record
    }
}

extension Representative {
    /// An accused added to a case for the benchmarks (fictional).
    public static func accused(caseID: String, version: UInt64) -> Haven_V1_AddAccusedRequest {
        var add = Haven_V1_AddAccusedRequest()
        add.caseID = caseID
        add.expectedVersion = version
        add.accused.name = "Benchmark Accused (fictional)"
        add.accused.role = .recruiter
        add.idempotencyKey = "benchmark-accused-\(caseID)"
        return add
    }

    /// An arrest of one accused: one more entry of their status history.
    public static func arrest(caseID: String, accusedID: String) -> Haven_V1_AppendCaseEventRequest {
        var append = Haven_V1_AppendCaseEventRequest()
        append.caseID = caseID
        append.event.occurredOn = Self.date(2026, 4, 2)
        append.event.arrest.accusedIds = [accusedID]
        append.event.arrest.agency = "Benchmark unit (fictional)"
        return append
    }
}
